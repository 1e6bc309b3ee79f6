"""Simulator tests: the Connect host (connect.py) — the install-key CDN, signed installs as an app
receives them (verified here with PyJWT as an app would), the bad-install variants, and JWT auth on
the site URLs (qsh with the context path stripped, expiry, the app's user)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt as pyjwt
import pytest
import requests

from .connect import KID, qsh

APP_KEY = "com.example.sim-test-app"


@pytest.fixture
def app():
    """A minimal Connect app: serves its descriptor, records lifecycle callbacks, answers 204."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            body = json.dumps({"key": APP_KEY, "name": "Sim Test App", "baseUrl": base,
                               "authentication": {"type": "jwt"}, "scopes": ["READ"],
                               "lifecycle": {"installed": "/installed", "uninstalled": "/uninstalled"}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            received.append({"path": self.path, "authorization": self.headers.get("Authorization"),
                             "body": json.loads(self.rfile.read(length))})
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    base = f"http://127.0.0.1:{server.server_port}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield base, received
    server.shutdown()


def install(sim, base, **extra):
    r = requests.post(sim.url + "/_sim/connect/install", timeout=10,
                      json={"site": "acme", "product": "confluence", "descriptor_url": base + "/d.json", **extra})
    assert r.status_code == 200, r.text
    return r.json()


def test_a_signed_install_verifies_with_the_cdn_key_and_names_the_site(sim, app):
    base, received = app
    out = install(sim, base)
    assert out["status"] == 204
    [call] = received
    assert call["path"] == "/installed"
    payload = call["body"]
    assert payload["clientKey"] == out["client_key"] and payload["sharedSecret"] == out["shared_secret"]
    assert payload["baseUrl"] == sim.site_base() + "/wiki" and payload["productType"] == "confluence"
    assert payload["cloudId"] == "11111111-1111-4111-8111-111111111111" and payload["key"] == APP_KEY
    token = call["authorization"].removeprefix("JWT ")
    kid = pyjwt.get_unverified_header(token)["kid"]
    assert kid == KID
    pem = requests.get(f"{sim.url}/connect-install-keys/{kid}", timeout=10)
    assert pem.status_code == 200 and "BEGIN PUBLIC KEY" in pem.text
    claims = pyjwt.decode(token, pem.text, algorithms=["RS256"], audience=base)
    assert claims["iss"] == payload["clientKey"]
    assert claims["qsh"] == qsh("POST", "/installed", "", "")
    assert requests.get(f"{sim.url}/connect-install-keys/other", timeout=10).status_code == 404


@pytest.mark.parametrize("variant", ["unknown_key", "wrong_aud", "expired", "other_client_key"])
def test_bad_install_variants_fail_an_apps_checks(sim, app, variant):
    base, received = app
    out = install(sim, base, variant=variant)
    token = received[-1]["authorization"].removeprefix("JWT ")
    kid = pyjwt.get_unverified_header(token)["kid"]
    pem = requests.get(f"{sim.url}/connect-install-keys/{kid}", timeout=10)
    if variant == "unknown_key":
        assert pem.status_code == 404
        return
    if variant == "other_client_key":
        claims = pyjwt.decode(token, pem.text, algorithms=["RS256"], audience=base)
        assert claims["iss"] != out["client_key"]
        return
    with pytest.raises(pyjwt.PyJWTError):
        pyjwt.decode(token, pem.text, algorithms=["RS256"], audience=base)
    installed = requests.get(sim.url + "/_sim/connect/installations", timeout=10).json()["installations"]
    assert installed == []


def test_the_site_takes_an_installed_apps_jwt_with_the_wiki_context_path(sim, app):
    base, _ = app
    out = install(sim, base)
    path = "/site/acme/wiki/rest/api/user/current"
    now = int(time.time())
    claims = {"iss": APP_KEY, "iat": now, "exp": now + 180, "qsh": qsh("GET", path, "", "/site/acme/wiki")}
    ok = pyjwt.encode(claims, out["shared_secret"], algorithm="HS256")
    r = requests.get(sim.url + path, headers={"Authorization": f"JWT {ok}"}, timeout=10)
    assert r.status_code == 200 and r.json()["displayName"] == "Sim Test App", r.text
    for bad in [{**claims, "exp": now - 1}, {**claims, "qsh": qsh("GET", path, "", "")}]:
        token = pyjwt.encode(bad, out["shared_secret"], algorithm="HS256")
        assert requests.get(sim.url + path, headers={"Authorization": f"JWT {token}"}, timeout=10).status_code == 401
    wrong = pyjwt.encode(claims, "another-secret-of-32-bytes-or-more!!", algorithm="HS256")
    assert requests.get(sim.url + path, headers={"Authorization": f"JWT {wrong}"}, timeout=10).status_code == 401
    # The descriptor asked for READ only: a write is refused.
    post = {**claims, "qsh": qsh("POST", "/site/acme/wiki/api/v2/pages", "", "/site/acme/wiki")}
    token = pyjwt.encode(post, out["shared_secret"], algorithm="HS256")
    r = requests.post(sim.url + "/site/acme/wiki/api/v2/pages", headers={"Authorization": f"JWT {token}"},
                      json={}, timeout=10)
    assert r.status_code == 401
    # Uninstalled: the token no longer works.
    install(sim, base, event="uninstalled")
    assert requests.get(sim.url + path, headers={"Authorization": f"JWT {ok}"}, timeout=10).status_code == 401
