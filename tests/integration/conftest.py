"""The integration suite: the real function binaries behind the local gateway, against moto and
the Atlassian simulator. One stack per session; each test uses its own tenant ids and resets the
simulator, so tests don't depend on each other."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.devstack import Stack

REPO = Path(__file__).resolve().parents[2]
RETURN_URL = "https://app.example.test/integrations/atlassian"
ALL_SCOPES = "bridge:admin bridge:read bridge:publish"


# The suite registers wrong credentials against the simulator's one host (and one Cloud site)
# on purpose, many times: a production threshold would lock them for every later test.
# test_destination_lockout.py runs its own stack with the production policy.
SUITE_ENV = {"BRIDGE_DESTINATION_LOCKOUT_THRESHOLD": "100000"}


def own_stack(tmp_path_factory, name: str, env_overrides: dict[str, str] | None = None):
    """A stack (moto, simulator, gateway) of its own, for a module fixture to yield from.

    The session stack keeps every earlier test's tenants in its table, their grants gone with each
    simulator reset. The keep-alive sweep, the DC grant sweep, the issue poll and the webhook
    refresh visit every tenant there is, so on the session stack their files spent minutes on other
    tests' tenants (test_issue_sync.py: 152 s in the suite, 44 s alone); their own stacks hold
    only their own tenants, for a few seconds of start-up."""
    s = Stack(REPO, tmp_path_factory.mktemp(f"{name}-logs"), REPO / "target" / "debug",
              env_overrides=SUITE_ENV if env_overrides is None else env_overrides)
    s.start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    yield from own_stack(tmp_path_factory, "session")


class Bridge:
    """What a test needs: the API, the simulator's control API, and the connect flow."""

    def __init__(self, stack: Stack):
        self.stack = stack
        self.gw = stack.gateway_url
        self.http = requests.Session()
        self.secrets_seen: list[str] = []

    def tenant(self) -> str:
        return "t-" + uuid.uuid4().hex[:12]

    def token(self, tenant: str, scopes: str = ALL_SCOPES) -> str:
        return self.stack.token(tenant, scopes)

    def call(self, method: str, path: str, tenant: str | None = None, *, token: str | None = None,
             json_body=None, scopes: str = ALL_SCOPES, **kw) -> requests.Response:
        headers = kw.pop("headers", {})
        if token is None and tenant is not None:
            token = self.token(tenant, scopes)
        if token:
            headers["authorization"] = f"Bearer {token}"
        return self.http.request(method, self.gw + path, json=json_body, headers=headers,
                                 allow_redirects=False, timeout=60, **kw)

    def sim(self, method: str, path: str, body=None) -> requests.Response:
        r = self.stack.sim(method, path, body)
        assert r.status_code < 300, (path, r.status_code, r.text)
        return r

    def start(self, tenant: str, product: str, return_url: str = RETURN_URL) -> str:
        r = self.call("POST", f"/v1/tenants/{tenant}/connections/{product}/oauth/start", tenant,
                      json_body={"return_url": return_url})
        assert r.status_code == 200, r.text
        url = r.json()["authorize_url"]
        self.secrets_seen.append(query(url)["state"])
        return url

    def authorize(self, authorize_url: str) -> str:
        """The browser at Atlassian: consent (the simulator auto-consents) → our callback URL."""
        r = self.http.get(authorize_url, allow_redirects=False, timeout=30)
        assert r.status_code == 302, r.text
        callback = r.headers["location"]
        assert callback.startswith(self.gw + "/v1/oauth/callback"), callback
        code = query(callback).get("code")
        if code:
            self.secrets_seen.append(code)
        return callback

    def callback(self, callback_url: str) -> requests.Response:
        return self.http.get(callback_url, allow_redirects=False, timeout=60)

    def land(self, tenant: str, product: str) -> dict[str, str]:
        """Start → consent → callback; returns the query the admin's browser lands on (with
        `status=pending_confirmation` and the one-time `confirmation` code on success)."""
        r = self.callback(self.authorize(self.start(tenant, product)))
        assert r.status_code == 302, r.text
        location = r.headers["location"]
        assert location.startswith(RETURN_URL), location
        landing = query(location)
        if landing.get("confirmation"):
            self.secrets_seen.append(landing["confirmation"])
        return landing

    def confirm(self, tenant: str, product: str, code: str) -> requests.Response:
        """What the SaaS backend does when its logged-in user's browser lands with the code."""
        return self.call("POST", f"/v1/tenants/{tenant}/connections/{product}/oauth/confirm", tenant,
                         json_body={"confirmation": code})

    def connect(self, tenant: str, product: str) -> dict[str, str]:
        """The whole flow, confirmed as the SaaS backend does; returns the landing query with
        `status` as the confirmation left it (`connected` or `site_selection_required`), or the
        error the browser landed with."""
        landing = self.land(tenant, product)
        if landing.get("status") != "pending_confirmation":
            return landing
        r = self.confirm(tenant, product, landing["confirmation"])
        assert r.status_code == 200, r.text
        statuses = {c["status"] for c in r.json()["connections"]}
        status = "connected" if statuses == {"connected"} else "site_selection_required"
        return {"product": landing["product"], "status": status}

    def connection(self, tenant: str, product: str) -> requests.Response:
        return self.call("GET", f"/v1/tenants/{tenant}/connections/{product}", tenant)

    def token_calls(self, grant_type: str | None = None) -> int:
        calls = self.sim("GET", "/_sim/calls").json()["calls"]
        return sum(1 for c in calls if c["route"] == "POST /oauth/token"
                   and (grant_type is None or c.get("grant_type") == grant_type))

    def app_secret(self) -> dict:
        sm = self.stack.aws("secretsmanager")
        return json.loads(sm.get_secret_value(SecretId=self.stack.client_secret_name)["SecretString"])

    def sign_state(self, claims: dict) -> str:
        """A state signed with the deployment's real key, to build expired and cross-tenant states."""
        key = base64.b64decode(self.app_secret()["state_signing_key"])
        payload = b64url(json.dumps(claims).encode())
        sig = hmac.new(key, payload.encode(), hashlib.sha256).digest()
        return f"{payload}.{b64url(sig)}"

    def grant_secret(self, tenant: str, target: str) -> str:
        """The one secret of the tenant's `target` grant (`oauth-{target}-{random}`: a new grant
        per consent)."""
        names = [n for n in self.secret_names(tenant)
                 if n.startswith(f"atlassian-bridge/tenants/{tenant}/oauth-{target}-")]
        assert len(names) == 1, self.secret_names(tenant)
        return names[0]

    def secret_names(self, tenant: str) -> list[str]:
        sm = self.stack.aws("secretsmanager")
        names = []
        for page in sm.get_paginator("list_secrets").paginate():
            names += [s["Name"] for s in page["SecretList"] if f"/tenants/{tenant}/" in s["Name"]]
        return names

    def items(self, tenant: str) -> list[dict]:
        ddb = self.stack.aws("dynamodb")
        out = ddb.query(TableName=self.stack.table_name, KeyConditionExpression="pk = :pk",
                        ExpressionAttributeValues={":pk": {"S": f"TENANT#{tenant}"}}, ConsistentRead=True)
        return out["Items"]


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@pytest.fixture
def bridge(stack):
    """A reset simulator with our OAuth client registered; afterwards, every secret the test saw
    or the simulator issued must be absent from every captured log line."""
    b = Bridge(stack)
    # Where each log ends now: this test's secrets are new (the simulator issues them after the
    # reset), so only what is logged from here on can hold them — rescanning every earlier test's
    # lines after each test made the suite quadratic in its log size.
    start = log_offsets(stack)
    stack.sim("POST", "/_sim/reset")
    stack.register_client()
    yield b
    issued = stack.sim("GET", "/_sim/oauth/issued").json()
    secrets = [s for group in issued.values() for s in group] + b.secrets_seen
    assert_not_logged(stack, secrets, since=start)


def log_offsets(stack: Stack) -> dict[str, int]:
    """The size of every captured log now (see assert_not_logged's `since`)."""
    return {path.name: path.stat().st_size for path in Path(stack.logs_dir).glob("*.log")}


# Read back this far before an offset, so a secret written across the offset is still whole.
OVERLAP = 64 * 1024


def assert_not_logged(stack: Stack, secrets: list[str], since: dict[str, int] | None = None) -> None:
    """No secret in any captured log — from `since` (log_offsets at the test's start, less an
    overlap) when given, else whole."""
    secrets = [s for s in set(secrets) if s and len(s) >= 8]
    if not secrets:
        return
    for path in Path(stack.logs_dir).glob("*.log"):
        offset = max(0, (since or {}).get(path.name, 0) - OVERLAP)
        with path.open("rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        for secret in secrets:
            assert secret not in text, f"a secret value appears in {path.name}"
