"""Simulator tests: Data Center instances as OAuth 2.0 providers (incoming application links,
`dc_oauth.py`). Run: .venv/bin/python -m pytest tests/sim/test_sim_dc_oauth.py -q"""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qs, urlsplit

import requests

REDIRECT = "https://bridge.example.test/v1/oauth/callback"
CLIENT, SECRET = "link-client", "link-secret"


def link(sim, **extra):
    sim.control("PUT", "/dc/oauth/links", [{"instance": "jira-dc", "client_id": CLIENT, "client_secret": SECRET,
                                            "redirect_uri": REDIRECT, **extra}], expect=200)


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def authorize(sim, verifier="v" * 43, **params):
    query = {"client_id": CLIENT, "redirect_uri": REDIRECT, "response_type": "code", "scope": "READ WRITE",
             "state": "st", "code_challenge": s256(verifier), "code_challenge_method": "S256", **params}
    r = requests.get(sim.dc_base("jira-dc") + "/rest/oauth2/latest/authorize", params=query,
                     allow_redirects=False, timeout=5)
    return r


def code_of(r) -> str:
    assert r.status_code == 302, r.text
    q = {k: v[0] for k, v in parse_qs(urlsplit(r.headers["Location"]).query).items()}
    assert q["state"] == "st"
    return q["code"]


def token(sim, **data):
    body = {"client_id": CLIENT, "client_secret": SECRET, "redirect_uri": REDIRECT, **data}
    body = {k: v for k, v in body.items() if v is not None}
    return requests.post(sim.dc_base("jira-dc") + "/rest/oauth2/latest/token", data=body, timeout=5)


def test_pkce_is_verified_and_a_code_works_once(sim):
    link(sim)
    code = code_of(authorize(sim))
    missing = token(sim, grant_type="authorization_code", code=code)
    assert (missing.status_code, missing.json()["error"]) == (400, "invalid_grant")
    wrong = token(sim, grant_type="authorization_code", code=code, code_verifier="w" * 43)
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_grant")
    ok = token(sim, grant_type="authorization_code", code=code, code_verifier="v" * 43)
    assert ok.status_code == 200, ok.text
    assert ok.json()["scope"] == "READ WRITE" and ok.json()["expires_in"] == 3600
    again = token(sim, grant_type="authorization_code", code=code, code_verifier="v" * 43)
    assert again.json()["error"] == "invalid_grant"


def test_a_refresh_rotates_and_the_spent_token_is_refused(sim):
    link(sim)
    pair = token(sim, grant_type="authorization_code", code=code_of(authorize(sim)), code_verifier="v" * 43).json()
    me = requests.get(sim.dc_base("jira-dc") + "/rest/api/2/myself", timeout=5,
                      headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert me.status_code == 200 and me.json()["name"] == "bridge-bot"
    no_redirect = token(sim, grant_type="refresh_token", refresh_token=pair["refresh_token"], redirect_uri=None)
    assert no_redirect.json()["error"] == "invalid_grant"
    fresh = token(sim, grant_type="refresh_token", refresh_token=pair["refresh_token"]).json()
    assert fresh["refresh_token"] != pair["refresh_token"] and fresh["access_token"] != pair["access_token"]
    reused = token(sim, grant_type="refresh_token", refresh_token=pair["refresh_token"])
    assert (reused.status_code, reused.json()["error"]) == (400, "invalid_grant")
    assert sim.control("GET", "/dc/oauth/grants") == [
        {"grant": 1, "instance": "jira-dc", "client_id": CLIENT, "refresh_tokens": 2, "live": 1}]
    sim.control("POST", "/dc/oauth/revoke", {}, expect=200)
    assert token(sim, grant_type="refresh_token", refresh_token=fresh["refresh_token"]).json()["error"] == "invalid_grant"
    gone = requests.get(sim.dc_base("jira-dc") + "/rest/api/2/myself", timeout=5,
                        headers={"Authorization": f"Bearer {fresh['access_token']}"})
    assert gone.status_code == 401


def test_clients_redirects_and_scopes_are_checked(sim):
    link(sim, scopes=["READ"])
    assert authorize(sim, client_id="nobody").status_code == 400
    assert authorize(sim, redirect_uri="https://evil.test/cb").status_code == 400
    refused = authorize(sim)                       # WRITE asked, the link allows READ only
    assert "error=invalid_scope" in refused.headers["Location"]
    pair = token(sim, grant_type="authorization_code", code=code_of(authorize(sim, scope="READ")),
                 code_verifier="v" * 43).json()
    bad_secret = token(sim, grant_type="refresh_token", refresh_token=pair["refresh_token"], client_secret="x")
    assert (bad_secret.status_code, bad_secret.json()["error"]) == (401, "invalid_client")
    # A READ token may read, not write.
    headers = {"Authorization": f"Bearer {pair['access_token']}"}
    base = sim.dc_base("jira-dc")
    assert requests.get(base + "/rest/api/2/myself", headers=headers, timeout=5).status_code == 200
    write = requests.post(base + "/rest/api/2/issue", json={"fields": {}}, headers=headers, timeout=5)
    assert write.status_code == 403
    sim.control("POST", "/dc/oauth/expire", {}, expect=200)
    assert requests.get(base + "/rest/api/2/myself", headers=headers, timeout=5).status_code == 401
