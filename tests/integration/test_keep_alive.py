"""The keep-alive sweep end to end: the real `keep-alive` binary, fired as its EventBridge
Scheduler schedule through the local gateway, against moto and the simulator, with a year of a
grant's life lived by shifting the clocks (the simulator's, and the functions' through the
test-only BRIDGE_TEST_CLOCK_OFFSET_SECONDS) together.

Atlassian retires a rotating refresh token unused for 90 days and every one of a consent's
tokens 365 days after it; the simulator models both (tests/sim/oauth.py)."""

from __future__ import annotations

import pytest

from . import registration as reg
from .conftest import own_stack


# The sweep/poll here visits every tenant in the table: a stack of its own (see own_stack).
@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    yield from own_stack(tmp_path_factory, "keep-alive")


DAY = 86400
EXPIRING, BROKEN = "Connection Expiring", "Connection Broken"


class Year:
    """Moves the simulator's clock and every function's clock to a day after the test began."""

    def __init__(self, bridge):
        self.bridge = bridge
        self.day = 0

    def to(self, day: int) -> None:
        assert day >= self.day
        self.bridge.sim("POST", "/_sim/clock/advance", {"days": day - self.day})
        for function in self.bridge.stack.functions:
            self.bridge.stack.set_function_env(function, {"BRIDGE_TEST_CLOCK_OFFSET_SECONDS": str(day * DAY)})
        self.day = day

    def reset(self) -> None:
        for function in self.bridge.stack.functions:
            self.bridge.stack.set_function_env(function, {"BRIDGE_TEST_CLOCK_OFFSET_SECONDS": None})


@pytest.fixture
def year(bridge):
    y = Year(bridge)
    yield y
    y.reset()


def sweep(bridge, kind: str = "scheduled") -> dict:
    """One run: the schedule as EventBridge Scheduler fires it, or an operator's restart."""
    stack = bridge.stack
    result = stack.fire_schedule("keep-alive") if kind == "scheduled" else stack.invoke(
        "keep-alive", {"sweep": "restart"})
    assert result["status"] == "ok", result
    return result["response"]


def events_of(bridge, tenants: set[str]) -> list[dict]:
    """Our outgoing events for these tenants (the tap queue, drained)."""
    return [e for e in bridge.stack.published_events()
            if e["detail-type"] in (EXPIRING, BROKEN) and e["detail"].get("tenant_id") in tenants]


def grant(bridge) -> dict:
    (g,) = bridge.sim("GET", "/_sim/oauth/grants").json()["grants"]
    return g


def sim_now(bridge) -> float:
    return bridge.sim("GET", "/_sim/clock").json()["now"]


def test_the_sweep_keeps_an_idle_grant_alive_and_warns_before_the_year_ends(bridge, year):
    tenant = bridge.tenant()
    assert bridge.connect(tenant, "jira")["status"] == "connected"
    bridge.stack.published_events()
    consent = grant(bridge)
    # Left alone, the grant dies 90 days after the consent.
    assert consent["refresh_expires_at"] == pytest.approx(consent["created_at"] + 90 * DAY, abs=5)

    year.to(60)
    report = sweep(bridge)
    assert report["refreshed"] >= 1 and report["round_complete"], report
    kept = grant(bridge)
    # The sweep's refresh restarted the 90 days: the grant now lives to day 150, not 90.
    assert kept["refresh_expires_at"] == pytest.approx(sim_now(bridge) + 90 * DAY, abs=30)
    # One refresh of this grant (the sweep visits every tenant's connections, other tests' too).
    assert kept["refresh_tokens"] == consent["refresh_tokens"] + 1
    # The same day, the hourly runs leave it be (the round is done, the grant fresh).
    assert sweep(bridge)["visited"] == 0
    sweep(bridge, "restart")
    assert grant(bridge)["refresh_tokens"] == kept["refresh_tokens"]

    # Day 140: past the day the consent's own refresh token died, and the connection works.
    year.to(140)
    r = bridge.call("GET", f"/v1/tenants/{tenant}/jira/projects", tenant)
    assert r.status_code == 200, r.text
    assert bridge.connection(tenant, "jira").json()["status"] == "connected"

    for day in (220, 300):
        year.to(day)
        sweep(bridge)
    assert events_of(bridge, {tenant}) == []

    # 30 days before the consent's year ends: one notice, however many runs.
    year.to(335)
    sweep(bridge)
    sweep(bridge, "restart")
    [thirty] = events_of(bridge, {tenant})
    assert thirty["detail-type"] == EXPIRING
    assert thirty["detail"]["days_left"] == 30 and thirty["detail"]["products"] == ["jira"]
    assert "re-authorize" in thirty["detail"]["reason"]

    year.to(358)
    sweep(bridge)
    sweep(bridge, "restart")
    [seven] = events_of(bridge, {tenant})
    assert (seven["detail-type"], seven["detail"]["days_left"]) == (EXPIRING, 7)
    assert seven["detail"]["expires_at"] == thirty["detail"]["expires_at"]
    assert bridge.connection(tenant, "jira").json()["status"] == "connected"


def test_a_grant_left_without_the_sweep_dies_after_90_days(bridge, year):
    """The counter-proof: the same idle grant, never swept, is refused at day 91."""
    tenant = bridge.tenant()
    bridge.connect(tenant, "jira")
    year.to(91)
    r = bridge.call("GET", f"/v1/tenants/{tenant}/jira/projects", tenant)
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "reconnect_required"


@pytest.mark.parametrize("variant", ["api_token", "basic"])
def test_revoked_credentials_yield_one_connection_broken(bridge, year, variant):
    tenant = bridge.tenant()
    product = "jira"
    reg.register(bridge, tenant, product, variant)
    year.to(1)
    assert sweep(bridge, "restart")["verified"] >= 1
    assert events_of(bridge, {tenant}) == []

    if variant == "basic":
        bridge.secrets_seen.append("a-brand-new-password")
        bridge.sim("PUT", "/_sim/dc/users", [{"username": reg.DC_USER, "password": "a-brand-new-password",
                                               "display_name": reg.DC_DISPLAY, "email": "bridge-bot@corp.test"}])
    else:
        bridge.secrets_seen.append("ATATT3xFfGF0-a-rotated-token")
        bridge.sim("PUT", "/_sim/cloud/api-tokens", [{"email": reg.API_EMAIL, "token": "ATATT3xFfGF0-a-rotated-token",
                                                      "site": reg.CLOUD_ID, "display_name": reg.API_DISPLAY}])
    for _ in range(2):
        sweep(bridge, "restart")
    year.to(2)
    sweep(bridge)
    [broken] = events_of(bridge, {tenant})
    assert broken["detail-type"] == BROKEN
    detail = broken["detail"]
    assert (detail["product"], detail["status"]) == (product, "invalid_credentials")
    expected = "the API token was revoked or expired" if variant == "api_token" else "the password changed"
    assert expected in detail["reason"], detail
    assert bridge.connection(tenant, product).json()["status"] == "invalid_credentials"
