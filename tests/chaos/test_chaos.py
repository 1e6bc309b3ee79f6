"""The short fault campaign `make test` runs: a fixed seed, a small mix (6 tenants across Cloud
OAuth, Cloud API token and DC, connected while the faults are already on, 12 report publishes,
60 action items), faults at 20 %, moto slowed, duplicate deliveries and instance kills; every invariant of tests/chaos/campaign.py must hold.
`make chaos` runs the full size (CHAOS_SEED, CHAOS_TENANTS, ... to change it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.devstack import Stack

from .campaign import Campaign, Config

REPO = Path(__file__).resolve().parents[2]
SEED = 16


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = Stack(REPO, tmp_path_factory.mktemp("chaos-logs"), REPO / "target" / "debug",
              env_overrides={"BRIDGE_DESTINATION_LOCKOUT_THRESHOLD": "100000"}, deliver_own_events=True)
    s.start()
    yield s
    s.stop()


def test_a_short_fixed_seed_campaign_loses_nothing_and_duplicates_nothing(stack):
    campaign = Campaign(stack, Config(seed=SEED, tenants=6, publishes=12, items=60, batch=10, workers=6,
                                      duplicate_probability=0.2, kill_probability=0.1))
    ok, table = campaign.execute()
    print(table)
    assert ok, table
    counts = campaign.n.c
    assert counts["action_items"] == 60 and counts["publishes_event"] + counts["publishes_http"] == 12
    # the faults did happen: the run is no fair-weather run
    assert campaign.faults_injected > 0, table
    assert campaign.moto_latency.get("delayed", 0) > 0, "moto was not slowed"
    assert counts["connects"] == 12 and len(campaign.tenants) == 6, "every tenant connects under the faults"
