"""The load scenario of `make bench` at a size that fits the suite (issue 16): 5 tenants, Cloud
OAuth, Cloud API token and DC, publishing at once for 5 s through the gateway. Correctness only
— every answer 200 or a documented 429, exactly one page with one PDF per publish — never a
timing: the figures are `make bench`'s (tests/load.py)."""

from tests import load


def test_tenants_publishing_at_once_get_exactly_one_page_per_publish_and_no_errors(bridge):
    result = load.run(bridge, tenants=5, seconds=5)
    assert result.failures() == []
    assert {t.flavour for t in result.tenants} == set(load.FLAVOURS)
    assert {p.tenant.id for p in result.completed()} == {t.id for t in result.tenants}
    assert all(p.status == 200 for p in result.publishes)
    assert result.moto["requests"] > 0 and result.moto["busy_ms"] > 0     # tests/moto_serial.py's stats
    table, _ = load.render(result)
    assert "| exactly 1 |" in table and "AWS requests per publish" in table


def test_an_answer_other_than_a_documented_429_fails_the_scenario(bridge):
    people = load.connect(bridge, 1)
    # Every Confluence write answered 503 (after connecting): the route answers 503
    # upstream_unavailable, documented but not a 429.
    bridge.sim("POST", "/_sim/faults", {"route": "POST ", "kind": "status", "status": 503, "times": None})
    result = load.drive(bridge, people, 0)
    bridge.sim("DELETE", "/_sim/faults")
    assert result.publishes and all(p.error for p in result.publishes)
    assert any("503" in f for f in result.failures()), result.failures()
    assert "no publish completed" in result.failures()


def test_publishes_beyond_the_tenants_fair_share_are_documented_429s_then_exactly_one_page_each(bridge):
    people = load.connect(bridge, 1)
    # The first Confluence write is held (up to 1.5 s, the simulator's own timer): the publish
    # that has the tenant's one slot keeps it, so the other two lanes' first sends find it taken.
    bridge.sim("POST", "/_sim/faults", {"route": "POST ", "kind": "hold", "latency_ms": 1500, "times": 1})
    result = load.drive(bridge, people, 0, inflight=3, slots=1)
    bridge.sim("DELETE", "/_sim/faults")
    assert result.failures() == []
    assert result.rate_limited["tenant_rate_limited"] >= 2 and set(result.rate_limited) == {"tenant_rate_limited"}
    assert len(result.completed()) == 3 and all(p.status == 200 for p in result.publishes)
    assert sum(p.attempts for p in result.publishes) == 3 + sum(result.rate_limited.values())
    table, _ = load.render(result)
    assert "a fair share of 1" in table and "| exactly 1 |" in table
