"""Report pages with a PDF summary into Confluence Cloud and Data Center, exactly once."""

import html
import re
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from . import jobs

SPACE = "SPA"


@pytest.fixture(params=["cloud", "dc"])
def confluence(request, bridge):
    return jobs.confluence_tenant(bridge, request.param, SPACE)


publish = jobs.publish


def our_pages(bridge, flavour, title):
    return [p for p in jobs.pages(bridge, SPACE, flavour) if p["title"].startswith(title)]


@pytest.mark.parametrize("make", [jobs.retrospective, jobs.health_check])
def test_a_report_becomes_a_page_under_its_parent_with_a_pdf(confluence, make, tmp_path):
    bridge, tenant, flavour = confluence
    report = make()
    r = publish(bridge, tenant, report)
    assert r.status_code == 200, r.text
    publication = r.json()
    assert publication["state"] == "published"
    assert publication["page_id"] and publication["attachment_id"] and publication["version"] >= 1

    all_pages = jobs.pages(bridge, SPACE, flavour)
    page = next(p for p in all_pages if str(p["id"]) == publication["page_id"])
    parent_title = "Retrospectives" if report["kind"] == "retrospective" else "Health Checks"
    parent = next(p for p in all_pages if p["title"] == parent_title)
    assert str(page.get("parent_id") or page.get("parentId")) == str(parent["id"])
    assert page["title"] == report["title"]
    body = html.unescape(page["body"])
    texts = ([i["text"] for s in report.get("sections", []) for i in s["items"]]
             + [a["title"] for a in report.get("action_items", [])]
             + [d["name"] for d in report.get("dimensions", [])]
             + [c for d in report.get("dimensions", []) for c in d["comments"]])
    for text in texts:
        assert text in body, text

    [attachment] = jobs.attachments(bridge, publication["page_id"])
    pdf = jobs.pdf_text(jobs.attachment_bytes(attachment), tmp_path)
    for text in texts + [report["title"]]:
        assert " ".join(text.split()) in " ".join(pdf.split()), text

    got = bridge.call("GET", f"/v1/tenants/{tenant}/publications/{publication['id']}", tenant)
    assert got.status_code == 200 and got.json()["page_id"] == publication["page_id"]


def test_hostile_text_is_shown_as_text(confluence, tmp_path):
    bridge, tenant, flavour = confluence
    hostile = ['<ac:structured-macro ac:name="html"><ac:plain-text-body><![CDATA[<script>x</script>]]>'
               '</ac:plain-text-body></ac:structured-macro>', "]]> & <script>alert(1)</script>",
               "ctrl\x01\x02chars", "emoji 🎉 and RTL שלום مرحبا", "Ελληνικά и кириллица"]
    r = publish(bridge, tenant, jobs.retrospective(items=hostile))
    assert r.status_code == 200, r.text
    page = next(p for p in jobs.pages(bridge, SPACE, flavour) if str(p["id"]) == r.json()["page_id"])
    # Only our macros: the marker anchor, the summary panel, the inline PDF (and no "html").
    assert re.findall(r'<ac:structured-macro ac:name="([^"]+)"', page["body"]) == ["anchor", "info", "view-file"]
    assert "<script" not in page["body"]
    text = html.unescape(page["body"])
    for item in ["]]> & <script>alert(1)</script>", "ctrlchars", "emoji 🎉 and RTL שלום مرحبا", "Ελληνικά и кириллица"]:
        assert item in text


def test_republishing_a_report_updates_its_page(confluence):
    bridge, tenant, flavour = confluence
    report = jobs.retrospective()
    first = publish(bridge, tenant, report).json()
    report["sections"][0]["items"].append({"text": "Added later", "votes": 1})
    second = publish(bridge, tenant, report).json()
    assert second["page_id"] == first["page_id"] and second["version"] == first["version"] + 1
    assert len(our_pages(bridge, flavour, report["title"])) == 1
    assert len(jobs.attachments(bridge, first["page_id"])) == 1


@pytest.mark.parametrize("make", [jobs.retrospective, jobs.health_check])
def test_republishing_the_same_report_leaves_its_page_body_byte_for_byte_unchanged(confluence, make):
    """Two publications of one report (two idempotency keys, as when the SaaS sends it again):
    one page, and the second write carries exactly the bytes of the first — the body holds no
    clock, no random macro ids, no hash order."""
    bridge, tenant, flavour = confluence
    report = make()
    first = publish(bridge, tenant, report)
    assert first.status_code == 200, first.text
    [page] = our_pages(bridge, flavour, report["title"])
    body = page["body"]
    assert 'ac:name="info"' in body and 'ac:name="view-file"' in body  # the page this issue made
    second = publish(bridge, tenant, report)
    assert second.status_code == 200, second.text
    assert second.json()["id"] != first.json()["id"] and second.json()["page_id"] == first.json()["page_id"]
    [again] = our_pages(bridge, flavour, report["title"])
    assert again["id"] == page["id"] and again["body"] == body
    assert len(jobs.attachments(bridge, str(page["id"]))) == 1


def test_the_tenant_locale_labels_the_page_unless_the_report_names_its_own(bridge):
    """Data Center, settings with a locale and the Jira application link (validated, kept)."""
    tenant = bridge.tenant()
    jobs.connect(bridge, tenant, "confluence", "dc")
    link = {"server_name": "Company Jira", "server_id": "144880e9-a353-312f-9412-ed028e8166fa"}
    jobs.settings(bridge, tenant, "confluence", {"space_key": SPACE, "locale": "de", "jira_application_link": link})
    german = jobs.retrospective(title="Sprint 42 " + uuid.uuid4().hex[:6])
    r = publish(bridge, tenant, german)
    assert r.status_code == 200, r.text
    [page] = our_pages(bridge, "dc", german["title"])
    text = html.unescape(page["body"])
    assert "<th>Datum</th><td>20.11.2026</td>" in text and "<h2>Aktionspunkte</h2>" in text
    assert ">Date<" not in text
    japanese = dict(jobs.retrospective(title="Sprint 43 " + uuid.uuid4().hex[:6]), locale="ja")
    assert publish(bridge, tenant, japanese).status_code == 200
    [page] = our_pages(bridge, "dc", japanese["title"])
    assert "<th>日付</th><td>2026年11月20日</td>" in html.unescape(page["body"])
    bad = bridge.call("PUT", f"/v1/tenants/{tenant}/settings/confluence", tenant, json_body={
        "space_key": SPACE, "jira_application_link": {"server_name": "Jira", "server_id": "not-a-uuid"}})
    assert bad.status_code == 400 and "server_id" in bad.json()["error"]["message"]


def test_a_title_held_by_another_page_gets_a_stable_distinct_title(confluence):
    bridge, tenant, flavour = confluence
    first = jobs.retrospective(title="Shared title " + uuid.uuid4().hex[:6])
    other = dict(jobs.retrospective(title=first["title"]))
    a = publish(bridge, tenant, first).json()
    b = publish(bridge, tenant, other).json()
    assert a["page_id"] != b["page_id"]
    assert b["title"] == f"{first['title']} ({other['date']})"
    again = publish(bridge, tenant, other).json()
    assert again["page_id"] == b["page_id"] and again["title"] == b["title"]


def test_the_same_event_three_times_leaves_one_page_and_one_attachment(confluence):
    bridge, tenant, flavour = confluence
    report = jobs.retrospective()
    detail = {"tenant_id": tenant, "idempotency_key": uuid.uuid4().hex, "report": report}
    for _ in range(3):
        assert jobs.event(bridge, "Report Ready", detail)["status"] == "ok"
    [page] = our_pages(bridge, flavour, report["title"])
    assert len(jobs.attachments(bridge, str(page["id"]))) == 1
    published = [e for e in bridge.stack.published_events() if e["detail-type"] == "Page Published"
                 and e["detail"]["tenant_id"] == tenant]
    assert len(published) == 3 and {e["detail"]["page_id"] for e in published} == {str(page["id"])}


def test_the_same_event_five_times_at_once_leaves_one_page_and_one_attachment(confluence):
    bridge, tenant, flavour = confluence
    report = jobs.retrospective()
    detail = {"tenant_id": tenant, "idempotency_key": uuid.uuid4().hex, "report": report}
    with ThreadPoolExecutor(max_workers=5) as pool:
        outcomes = list(pool.map(lambda _: jobs.event(bridge, "Report Ready", detail), range(5)))
    assert [o["status"] for o in outcomes] == ["ok"] * 5, outcomes
    [page] = our_pages(bridge, flavour, report["title"])
    assert len(jobs.attachments(bridge, str(page["id"]))) == 1


ATTACHMENT_ROUTE = {"cloud": "PUT /ex/confluence/{cloudId}/wiki/rest/api/content/{id}/child/attachment",
                    "dc": "POST /dc/conf-dc/confluence/rest/api/content/{id}/child/attachment"}


def test_a_delivery_whose_lease_lapses_mid_step_waits_for_the_one_that_took_over(confluence):
    """The holder's upload outlasts its lease (3 s here); a second delivery takes the job over
    and finishes it. The first must not fail: it waits for the new holder and answers its outcome."""
    bridge, tenant, flavour = confluence
    report = jobs.retrospective()
    detail = {"tenant_id": tenant, "idempotency_key": uuid.uuid4().hex, "report": report}
    bridge.stack.sim("POST", "/_sim/faults", {"route": ATTACHMENT_ROUTE[flavour], "kind": "latency",
                                              "latency_ms": 4500, "times": 1})
    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(lambda _: jobs.event(bridge, "Report Ready", detail), range(2)))
    assert [o["status"] for o in outcomes] == ["ok", "ok"], outcomes
    [page] = our_pages(bridge, flavour, report["title"])
    assert len(jobs.attachments(bridge, str(page["id"]))) == 1
    published = [e for e in bridge.stack.published_events() if e["detail-type"] == "Page Published"
                 and e["detail"]["tenant_id"] == tenant]
    assert len(published) == 2 and len({e["detail"]["page_id"] for e in published}) == 1


@pytest.mark.parametrize("step", ["page_created", "attachment_uploaded", "record_written"])
def test_a_crash_after_each_step_then_a_retry_leaves_no_duplicate(confluence, step):
    bridge, tenant, flavour = confluence
    report = jobs.retrospective()
    detail = {"tenant_id": tenant, "idempotency_key": uuid.uuid4().hex, "report": report}
    bridge.stack.set_function_env("publish-page", {"BRIDGE_TEST_CRASH_AT": step})
    try:
        crashed = jobs.event(bridge, "Report Ready", detail)
        assert crashed["status"] == "error", crashed
    finally:
        bridge.stack.set_function_env("publish-page", {"BRIDGE_TEST_CRASH_AT": None})
    retried = jobs.event(bridge, "Report Ready", detail)
    assert retried["status"] == "ok", retried
    [page] = our_pages(bridge, flavour, report["title"])
    assert len(jobs.attachments(bridge, str(page["id"]))) == 1
    published = [e for e in bridge.stack.published_events() if e["detail-type"] == "Page Published"
                 and e["detail"]["tenant_id"] == tenant]
    assert published and published[-1]["detail"]["page_id"] == str(page["id"])


def test_events_report_published_and_failed_on_the_bus(confluence):
    bridge, tenant, flavour = confluence
    key = uuid.uuid4().hex
    assert jobs.event(bridge, "Report Ready", {"tenant_id": tenant, "idempotency_key": key,
                                                "report": jobs.health_check()})["status"] == "ok"
    bad = jobs.retrospective()
    bad["title"] = ""
    assert jobs.event(bridge, "Report Ready", {"tenant_id": tenant, "idempotency_key": "k2", "report": bad})["status"] == "ok"
    events = [e for e in bridge.stack.published_events() if e["detail"].get("tenant_id") == tenant]
    published = [e for e in events if e["detail-type"] == "Page Published"]
    failed = [e for e in events if e["detail-type"] == "Publish Failed"]
    assert published[0]["detail"]["idempotency_key"] == key and published[0]["source"] == "atlassian-bridge"
    assert failed[0]["detail"]["retryable"] is False and "title" in failed[0]["detail"]["reason"]


def test_a_confluence_outage_is_retryable_and_reported(confluence):
    bridge, tenant, flavour = confluence
    bridge.stack.sim("POST", "/_sim/faults", {"route": "POST ", "kind": "status", "status": 503, "times": None})
    detail = {"tenant_id": tenant, "idempotency_key": uuid.uuid4().hex, "report": jobs.retrospective()}
    outcome = jobs.event(bridge, "Report Ready", detail)
    assert outcome["status"] == "error"
    failed = [e for e in bridge.stack.published_events() if e["detail-type"] == "Publish Failed"
              and e["detail"]["tenant_id"] == tenant]
    assert failed and failed[-1]["detail"]["retryable"] is True
    bridge.stack.sim("DELETE", "/_sim/faults")
    assert jobs.event(bridge, "Report Ready", detail)["status"] == "ok"


def test_bad_reports_get_a_400_that_says_what_to_fix(confluence):
    bridge, tenant, _ = confluence
    report = jobs.retrospective()
    report["sections"][0]["items"][0]["text"] = "x" * 5001
    r = publish(bridge, tenant, report)
    assert r.status_code == 400 and "sections[0].items[0].text" in r.json()["error"]["message"]
    missing = bridge.call("POST", f"/v1/tenants/{tenant}/pages", tenant, json_body=jobs.retrospective())
    assert (missing.status_code, missing.json()["error"]["code"]) == (400, "idempotency_key_required")
