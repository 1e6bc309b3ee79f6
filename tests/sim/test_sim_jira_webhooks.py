"""Simulator tests: Jira Cloud dynamic webhooks — registration with Jira's JQL filter rules, one
URL per app, listing, 30-day expiry on the sim clock, refresh (unknown ids ignored), deletion, and
signed deliveries (HS256 with the app's client secret, the same identifier on a redelivery,
dropped deliveries never sent). Run: .venv/bin/python -m pytest tests/sim -q"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from .state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from .test_sim import SITE, tokens

SCOPES = "read:jira-work write:jira-work read:jira-user offline_access manage:jira-webhook"
GW = f"/ex/jira/{SITE}/rest/api/3"
EVENTS = ["jira:issue_updated", "jira:issue_deleted"]


class Receiver:
    """An HTTP server on loopback that records every POST (headers and JSON body)."""

    def __init__(self):
        got = self.got = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                got.append({"headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": json.loads(body)})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/webhooks/jira"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


class Jira:
    """Jira Cloud REST v3 through the gateway, as the OAuth app."""

    def __init__(self, sim):
        self.sim = sim
        self.renew()

    def renew(self):
        """A fresh access token (after the clock moved past the last one's hour)."""
        self.at = tokens(self.sim, SCOPES)["access_token"]

    def __call__(self, method, path, body=None):
        return requests.request(method, self.sim.url + GW + path, json=body, timeout=5,
                                headers={"Authorization": f"Bearer {self.at}"})

    def advance(self, days: int):
        self.sim.control("POST", "/clock/advance", {"days": days}, expect=200)
        self.renew()


@pytest.fixture
def jira(sim):
    sim.quirks(webhooks_allow_http_loopback=True)
    return Jira(sim)


def register(jira, url, jql='project IN ("BRF")', **extra):
    r = jira("POST", "/webhook", {"url": url, "webhooks": [{"events": EVENTS, "jqlFilter": jql, **extra}]})
    assert r.status_code == 200, r.text
    return r.json()["webhookRegistrationResult"]


def planted(sim, project="BRF"):
    return sim.control("POST", "/jira/issues?flavour=cloud", {"project": project, "count": 1}, expect=201)


def flush(sim):
    return sim.control("POST", "/webhooks/flush", expect=200)["deliveries"]


def verify(token: str) -> dict:
    head, body, sig = token.split(".")
    want = hmac.new(DEFAULT_CLIENT_SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(sig + "==") == want, "signed with the app's client secret"
    assert json.loads(base64.urlsafe_b64decode(head + "=="))["alg"] == "HS256"
    return json.loads(base64.urlsafe_b64decode(body + "=="))


def key_of(plant: dict) -> str:
    return (plant.get("keys") or [i["key"] for i in plant.get("issues", [])])[0]


def test_the_jql_filter_takes_only_what_jira_takes(jira, receiver):
    results = jira("POST", "/webhook", {"url": receiver.url, "webhooks": [
        {"events": EVENTS, "jqlFilter": 'project IN ("BRF", "OPS") AND status != Done'},
        {"events": EVENTS, "jqlFilter": "labels = retro"},
        {"events": EVENTS, "jqlFilter": "summary ~ flaky"},
    ]}).json()["webhookRegistrationResult"]
    assert "createdWebhookId" in results[0]
    assert results[1] == {"errors": ["The clause labels is unsupported"]}
    assert results[2]["errors"] and "createdWebhookId" not in results[2]
    bad = jira("POST", "/webhook", {"url": receiver.url, "webhooks": [{"events": ["nope"], "jqlFilter": ""}]})
    assert bad.status_code == 400


def test_one_url_per_app_and_https_only(jira, sim, receiver):
    register(jira, receiver.url)
    r = jira("POST", "/webhook", {"url": receiver.url + "/other", "webhooks": [{"events": EVENTS, "jqlFilter": ""}]})
    assert r.status_code == 400 and "single URL" in r.text
    sim.quirks(webhooks_allow_http_loopback=False)
    r = jira("POST", "/webhook", {"url": "http://127.0.0.1:1/x", "webhooks": [{"events": EVENTS, "jqlFilter": ""}]})
    assert r.status_code == 400


def test_the_manage_webhook_scope_is_needed(sim, receiver):
    at = tokens(sim, "read:jira-work offline_access")["access_token"]
    r = requests.get(sim.url + GW + "/webhook", headers={"Authorization": f"Bearer {at}"}, timeout=5)
    assert r.status_code == 401


def test_webhooks_expire_after_30_days_unless_refreshed(jira, sim, receiver):
    [created] = register(jira, receiver.url)
    wid = created["createdWebhookId"]
    listed = jira("GET", "/webhook").json()
    assert [w["id"] for w in listed["values"]] == [wid] and listed["isLast"] is True
    jira.advance(25)
    refreshed = jira("PUT", "/webhook/refresh", {"webhookIds": [wid, 999999]})
    assert refreshed.status_code == 200
    expires = refreshed.json()["expirationDate"]
    assert isinstance(expires, int)
    assert jira("GET", "/webhook").json()["values"][0]["expirationDate"] == expires
    jira.advance(29)
    assert [w["id"] for w in jira("GET", "/webhook").json()["values"]] == [wid], "refreshed: alive"
    jira.advance(2)
    assert jira("GET", "/webhook").json()["values"] == [], "expired"
    # A refresh of an expired webhook is ignored: it stays gone.
    assert jira("PUT", "/webhook/refresh", {"webhookIds": [wid]}).status_code == 200
    assert jira("GET", "/webhook").json()["values"] == []
    key = key_of(planted(sim))
    sim.control("POST", f"/jira/issues/{key}/transition?flavour=cloud", {"status": "Done"}, expect=200)
    assert flush(sim) == [] and receiver.got == []


def test_a_change_is_delivered_signed_and_redelivered_with_the_same_identifier(jira, sim, receiver):
    [created] = register(jira, receiver.url, fieldIdsFilter=["status", "summary"])
    key = key_of(planted(sim))
    other = key_of(planted(sim, project="REQ"))
    sim.control("POST", f"/jira/issues/{key}/transition?flavour=cloud", {"status": "Done"}, expect=200)
    sim.control("POST", f"/jira/issues/{other}/transition?flavour=cloud", {"status": "Done"}, expect=200)
    sim.control("PATCH", f"/jira/issues/{key}?flavour=cloud", {"fields": {"labels": ["x"]}}, expect=200)
    [d] = flush(sim)
    assert d["attempts"][0]["status"] == 200 and d["key"] == key
    [got] = receiver.got
    assert got["body"]["webhookEvent"] == "jira:issue_updated"
    assert got["body"]["matchedWebhookIds"] == [created["createdWebhookId"]]
    issue = got["body"]["issue"]
    assert issue["key"] == key and issue["self"].startswith("https://acme.atlassian.net/")
    assert issue["fields"]["status"]["name"] == "Done"
    auth = got["headers"]["authorization"]
    assert auth.startswith("Bearer ")
    claims = verify(auth.split(" ", 1)[1])
    assert claims["iss"] == DEFAULT_CLIENT_ID and claims["exp"] > claims["iat"]
    identifier = got["headers"]["x-atlassian-webhook-identifier"]

    sim.control("POST", f"/webhooks/deliveries/{d['id']}/redeliver", expect=200)
    assert len(receiver.got) == 2
    again = receiver.got[1]
    assert again["headers"]["x-atlassian-webhook-identifier"] == identifier
    assert again["headers"]["x-atlassian-webhook-retry"] == "1"
    assert again["body"] == got["body"]

    sim.control("DELETE", f"/jira/issues/{key}?flavour=cloud", expect=200)
    [_, deleted] = flush(sim)
    assert deleted["event"] == "jira:issue_deleted" and receiver.got[2]["body"]["issue"]["key"] == key


def test_dropped_deliveries_are_never_sent_and_deleted_webhooks_stop(jira, sim, receiver):
    [created] = register(jira, receiver.url)
    key = key_of(planted(sim))
    sim.control("POST", "/webhooks/drop", {"count": 1}, expect=200)
    sim.control("POST", f"/jira/issues/{key}/transition?flavour=cloud", {"status": "In Progress"}, expect=200)
    [d] = flush(sim)
    assert d["dropped"] is True and d["attempts"] == [] and receiver.got == []
    assert jira("DELETE", "/webhook", {"webhookIds": [created["createdWebhookId"]]}).status_code == 202
    sim.control("POST", f"/jira/issues/{key}/transition?flavour=cloud", {"status": "Done"}, expect=200)
    assert len(flush(sim)) == 1 and receiver.got == []
