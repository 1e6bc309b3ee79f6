"""Simulator tests: the seeded random fault mode (`PUT /_sim/chaos`) the fault campaign uses."""

from __future__ import annotations

import requests

from . import faults
from .test_sim_commit_faults import DC_BULK_ROUTE, DC_PAGES_ROUTE, GW_ATTACH_ROUTE, PAGES_ROUTE

BOT = ("bridge-bot", "s3cret-pass")
MYSELF = "/dc/jira-dc/jira/rest/api/2/myself"


def _run(sim, seed, n=60, probability=0.5):
    sim.control("PUT", "/chaos", {"seed": seed, "probability": probability, "timeout_ms": 50,
                                  "latency_ms": 5}, expect=200)
    outcomes = []
    for _ in range(n):
        try:
            outcomes.append(requests.get(sim.url + MYSELF, auth=BOT, timeout=5).status_code)
        except requests.ConnectionError:
            outcomes.append("dropped")
    counts = sim.control("GET", "/chaos", expect=200)["chaos"]
    sim.control("DELETE", "/chaos", expect=200)
    return outcomes, counts


def test_the_same_seed_gives_the_same_faults_and_counts_them(sim):
    first, counts = _run(sim, 7)
    again, counts_again = _run(sim, 7)
    other, _ = _run(sim, 8)
    assert first == again and counts == counts_again
    assert first != other
    assert counts["requests"] == 60 and counts["injected_total"] == sum(counts["injected"].values()) > 10
    # a read gets neither commit_then_drop, token failures nor expired tokens (Basic auth)
    assert {k for k, v in counts["injected"].items() if v} <= {"rate_limit", "status", "timeout", "latency", "drop"}
    assert 429 in first and "dropped" in first


def test_off_means_no_faults(sim):
    sim.control("PUT", "/chaos", {"seed": 1, "probability": 0}, expect=200)
    assert all(requests.get(sim.url + MYSELF, auth=BOT, timeout=5).status_code == 200 for _ in range(20))
    assert sim.control("GET", "/chaos", expect=200)["chaos"]["injected_total"] == 0


def test_kinds_fit_the_route():
    c = faults.Chaos(1)
    assert faults.is_create(PAGES_ROUTE) and faults.is_create(DC_PAGES_ROUTE)
    assert faults.is_create(GW_ATTACH_ROUTE) and faults.is_create(DC_BULK_ROUTE)
    assert not faults.is_create("POST /ex/jira/{cloudId}/rest/api/3/issue/{issueIdOrKey}/transitions")
    assert set(c._eligible("POST /oauth/token", False)) == {"token_failure", "drop", "latency"}
    assert "expired_token" in c._eligible("GET /ex/jira/{cloudId}/rest/api/3/myself", True)
    assert "expired_token" not in c._eligible("GET /ex/jira/{cloudId}/rest/api/3/myself", False)
    assert "commit_then_drop" in c._eligible(PAGES_ROUTE, True)


def test_bad_chaos_bodies_are_refused(sim):
    for body in ({}, {"seed": "x"}, {"seed": 1, "probability": 2}, {"seed": 1, "kinds": ["nope"]}):
        sim.control("PUT", "/chaos", body, expect=400)
