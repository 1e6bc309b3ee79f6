"""Simulator tests: the Forge invoker (forge.py). Run: .venv/bin/python -m pytest tests/sim -q"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import jwt
import pytest
import requests

SITE = "11111111-1111-4111-8111-111111111111"


class Remote:
    """A remote that records what Forge sent and answers 200 JSON."""

    def __init__(self):
        self.requests: list[dict] = []
        remote = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                remote.requests.append({"path": self.path, "headers": dict(self.headers),
                                        "body": json.loads(body or b"{}")})
                out = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def remote():
    r = Remote()
    yield r
    r.close()


def jwks_key(sim, kid):
    keys = requests.get(f"{sim.url}/forge/.well-known/jwks.json", timeout=5).json()["keys"]
    return jwt.PyJWK(next(k for k in keys if k["kid"] == kid))


def test_an_invocation_carries_a_documented_fit_and_an_app_system_token_for_the_gateway(sim, remote):
    app = sim.control("GET", "/forge/app")
    inst = sim.control("POST", "/forge/installations", {"product": "jira"})["installation_id"]
    out = sim.control("POST", "/forge/invoke/installed", {"remote": remote.url + "/forge/lifecycle",
                                                         "installation_id": inst})
    assert out["status"] == 200 and out["body"] == {"ok": True}
    [req] = remote.requests
    assert req["path"] == "/forge/lifecycle"
    assert req["body"]["eventType"] == "avi:forge:installed:app"
    token = req["headers"]["Authorization"].removeprefix("Bearer ")
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, jwks_key(sim, header["kid"]), algorithms=["RS256"], audience=app["app_id"],
                        issuer="forge/invocation-token")
    assert claims["app"]["installationId"] == inst
    assert claims["context"]["cloudId"] == SITE
    assert claims["app"]["apiBaseUrl"].endswith(f"/ex/jira/{SITE}")
    assert claims["exp"] - claims["iat"] == 60

    system = req["headers"]["x-forge-oauth-system"]
    assert system in sim.issued()["forge_system_tokens"] and token in sim.issued()["forge_fits"]
    auth = {"Authorization": f"Bearer {system}"}
    me = requests.get(f"{sim.url}/ex/jira/{SITE}/rest/api/3/myself", headers=auth, timeout=5)
    assert me.status_code == 200 and me.json()["accountType"] == "app", me.text
    # Only its installation's product, and only until it expires.
    conf = requests.get(f"{sim.url}/ex/confluence/{SITE}/wiki/api/v2/spaces", headers=auth, timeout=5)
    assert conf.status_code == 401
    sim.control("POST", "/forge/tokens/expire", {"installation_id": inst})
    assert requests.get(f"{sim.url}/ex/jira/{SITE}/rest/api/3/myself", headers=auth, timeout=5).status_code == 401


def test_rotation_and_the_refusal_shapes(sim, remote):
    inst = sim.control("POST", "/forge/installations", {"product": "confluence"})["installation_id"]
    first = sim.control("GET", "/forge/app")["keys"]
    rotated = sim.control("POST", "/forge/keys/rotate", {"keep_old": False})
    assert rotated["published"] == [rotated["signing"]] and rotated["signing"] not in first
    for fit in ({"alg": "none"}, {"alg": "HS256"}, {"kid": "rogue"}, {"aud": "x"}, {"exp_in": -100}):
        sim.control("POST", "/forge/invoke/scheduled", {"remote": remote.url, "installation_id": inst, "fit": fit})
    tokens = [r["headers"]["Authorization"].removeprefix("Bearer ") for r in remote.requests]
    headers = [jwt.get_unverified_header(t) for t in tokens]
    assert [h["alg"] for h in headers] == ["none", "HS256", "RS256", "RS256", "RS256"]
    assert tokens[0].endswith(".")
    assert headers[2]["kid"] == "rogue"
    key = jwks_key(sim, rotated["signing"])
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(tokens[3], key, algorithms=["RS256"], audience="ari:cloud:ecosystem::app/5a6b0f3c-bridge-sim-forge-app")
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(tokens[4], key, algorithms=["RS256"], options={"verify_aud": False})
