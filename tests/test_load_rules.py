"""The load scenario's rules that need no stack (tests/load.py, tests/bench.py): which 429s are
documented for the publish route, the percentile, and rewriting only the load table."""

from pathlib import Path

import requests

from tests import bench, load


def answer(status: int, body: bytes) -> requests.Response:
    r = requests.Response()
    r.status_code, r._content = status, body
    return r


def test_the_routes_documented_429_codes_come_from_openapi():
    codes, gateway_own = load.documented_429()
    assert codes == {"destination_locked", "tenant_rate_limited"}
    assert gateway_own


def test_only_a_429_with_a_documented_code_or_api_gateways_own_body_is_documented():
    codes, gateway_own = load.documented_429()
    ok = [answer(429, b'{"error": {"code": "tenant_rate_limited", "message": "m"}}'),
          answer(429, b'{"message": "Too Many Requests"}')]
    bad = [answer(429, b'{"error": {"code": "upstream_rate_limited", "message": "m"}}'),   # documented as 503
           answer(503, b'{"error": {"code": "upstream_rate_limited", "message": "m"}}'),
           answer(429, b'not json'), answer(429, b'[]'), answer(429, b'{"message": "x", "extra": 1}')]
    assert all(load.is_documented_429(r, codes, gateway_own) for r in ok)
    assert not any(load.is_documented_429(r, codes, gateway_own) for r in bad)
    assert not load.is_documented_429(ok[1], codes, False)


def test_a_route_without_a_documented_429_makes_every_429_an_error(tmp_path):
    spec = tmp_path / "openapi.json"
    spec.write_text('{"paths": {"/x": {"get": {"responses": {"200": {"description": "ok"}}}}}}')
    assert load.documented_429(spec, ("get", "/x")) == (set(), False)


def test_percentile_is_nearest_rank():
    samples = list(range(1, 101))
    assert load.percentile(samples, 50) == 50
    assert load.percentile(samples, 99) == 99
    assert load.percentile([7.0], 99) == 7.0
    assert load.percentile([], 50) is None


def test_the_load_table_is_rewritten_alone_and_the_other_tables_kept(tmp_path, monkeypatch):
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- bench:start (written) -->\n| old | 1 |\n\nMeasured then.\n<!-- bench:end -->\ntail\n")
    monkeypatch.setattr(bench, "REPO", Path(tmp_path))
    bench.write_readme(None, "| load | 1 |\n")
    bench.write_readme(None, "| load | 2 |\n")
    text = readme.read_text()
    assert "| old | 1 |\n\nMeasured then.\n" in text and "| load | 2 |" in text and "| load | 1 |" not in text
    assert text.count(bench.LOAD_START) == 1
    bench.write_readme("| new | 3 |\n", None)
    text = readme.read_text()
    assert "| old | 1 |" not in text and "| new | 3 |" in text and "| load | 2 |" in text
    assert text.endswith("<!-- bench:end -->\ntail\n")


def test_verify_counts_duplicated_lost_and_stray_pages(monkeypatch):
    cloud, dc = load.Tenant("t-a", "cloud_oauth"), load.Tenant("t-b", "dc")
    publishes = [load.Publish(cloud, "Load r1 t-a #0", "k0", status=200, page_id="1"),     # one page, one PDF
                 load.Publish(cloud, "Load r1 t-a #1", "k1", status=200, page_id="2"),     # two pages
                 load.Publish(dc, "Load r1 t-b #0", "k2", status=200, page_id="4"),        # page without its PDF
                 load.Publish(dc, "Load r1 t-b #1", "k3", status=200, page_id="5")]        # no page at all
    pages = {"cloud": [{"id": 1, "title": "Load r1 t-a #0", "attachments": ["a"]},
                       {"id": 2, "title": "Load r1 t-a #1", "attachments": ["b"]},
                       {"id": 3, "title": "Load r1 t-a #1", "attachments": []},
                       {"id": 6, "title": "Load r1 t-b #0", "attachments": ["c"]},           # the DC title on Cloud
                       {"id": 9, "title": "Load other run", "attachments": []}],
             "dc": [{"id": 4, "title": "Load r1 t-b #0", "attachments": []}]}
    for p in publishes:
        p.visible_ms = 1.0
    monkeypatch.setattr(load.jobs, "pages", lambda bridge, space, flavour: pages[flavour])
    result = load.Result([cloud, dc], 1, 1.0, publishes)
    load.verify(None, "r1", result)
    assert [p.verdict for p in publishes] == [None, "duplicated", "lost", "lost"]
    assert (result.duplicates, result.lost, result.stray) == (1, 2, 1)
    assert len(result.failures()) == len(result.errors) + 3
