"""Helpers for the publishing tests: connections, settings, reports, events, read-back."""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DC_USER, DC_PASSWORD = "bridge-bot", "s3cret-pass"


def connect_dc(bridge, tenant: str, product: str) -> None:
    base = {"jira": "/dc/jira-dc/jira", "confluence": "/dc/conf-dc/confluence"}[product]
    bridge.secrets_seen.append(DC_PASSWORD)
    r = bridge.call("PUT", f"/v1/tenants/{tenant}/connections/{product}", tenant, json_body={
        "deployment": "datacenter", "base_url": bridge.stack.sim_url + base,
        "auth": {"type": "basic", "username": DC_USER, "password": DC_PASSWORD}})
    assert r.status_code == 200, r.text


def connect(bridge, tenant: str, product: str, flavour: str) -> None:
    if flavour == "cloud":
        assert bridge.connect(tenant, product)["status"] == "connected"
    else:
        connect_dc(bridge, tenant, product)


def settings(bridge, tenant: str, product: str, body: dict) -> None:
    r = bridge.call("PUT", f"/v1/tenants/{tenant}/settings/{product}", tenant, json_body=body)
    assert r.status_code == 200, r.text


def confluence_tenant(bridge, flavour: str, space: str):
    """A tenant connected to Confluence (Cloud OAuth or DC) with its space saved."""
    tenant = bridge.tenant()
    connect(bridge, tenant, "confluence", flavour)
    settings(bridge, tenant, "confluence", {"space_key": space})
    return bridge, tenant, flavour


def publish(bridge, tenant: str, report: dict, key: str | None = None):
    return bridge.call("POST", f"/v1/tenants/{tenant}/pages", tenant, json_body=report,
                       headers={"Idempotency-Key": key or uuid.uuid4().hex})


def publication_page(bridge, tenant: str, key: str) -> str:
    """The page id of the publication of `key` (published: GET /publications/{id})."""
    import hashlib
    pid = hashlib.sha256(f"{tenant}\0{key}".encode()).hexdigest()[:24]
    r = bridge.call("GET", f"/v1/tenants/{tenant}/publications/{pid}", tenant)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "published", r.json()
    return r.json()["page_id"]


def retrospective(report_id: str | None = None, items: list[str] | None = None, title: str = "Sprint 42 retrospective") -> dict:
    items = items or ["Pairing on the release", "Faster CI"]
    return {
        "kind": "retrospective", "report_id": report_id or "r-" + uuid.uuid4().hex[:8], "title": title,
        "team": "Platform", "date": "2026-11-20", "facilitator": "Ana", "participants": ["Ana", "Ben", "Chloé"],
        "link": "https://app.example.test/retros/42",
        "sections": [
            {"title": "Went well", "items": [{"text": t, "votes": i + 1, "author": "Ben"} for i, t in enumerate(items)]},
            {"title": "To improve", "items": [{"text": "Flaky integration tests", "votes": 5, "group": "CI"}]},
        ],
        "action_items": [{"id": "a-1", "title": "Quarantine flaky tests", "assignee_email": "ben@example.test",
                          "due_date": "2026-12-01"}],
    }


def health_check(report_id: str | None = None) -> dict:
    return {
        "kind": "health_check", "report_id": report_id or "h-" + uuid.uuid4().hex[:8], "title": "Q4 health check",
        "team": "Platform", "date": "2026-11-21", "link": "https://app.example.test/health/7",
        "dimensions": [{"name": "Speed", "score": 7.5, "trend": "up", "comments": ["Builds got faster"]},
                       {"name": "Fun", "score": 4.0, "trend": "down", "comments": ["Too many meetings"]},
                       {"name": "Ownership", "score": 6.0, "trend": "flat", "comments": []}],
    }


def event(bridge, detail_type: str, detail: dict) -> dict:
    """Delivers one EventBridge event to the function its rule targets; the gateway answers with
    the invocation's outcome."""
    r = bridge.http.post(bridge.gw + "/_gateway/events", json={
        "Source": "saas.retro", "DetailType": detail_type, "Detail": json.dumps(detail)}, timeout=120)
    assert r.status_code == 200, r.text
    [invocation] = r.json()["invocations"]
    return invocation


def pages(bridge, space: str, flavour: str) -> list[dict]:
    r = bridge.stack.sim("GET", f"/_sim/confluence/pages?space={space}&flavour={flavour}")
    assert r.status_code == 200, r.text
    body = r.json()
    return body["pages"] if isinstance(body, dict) else body


def attachments(bridge, page_id: str) -> list[dict]:
    r = bridge.stack.sim("GET", f"/_sim/confluence/attachments?page_id={page_id}")
    assert r.status_code == 200, r.text
    body = r.json()
    return body["attachments"] if isinstance(body, dict) else body


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / f"{uuid.uuid4().hex}.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], check=True, capture_output=True, text=True).stdout


def attachment_bytes(attachment: dict) -> bytes:
    for key in ("content_base64", "content", "data"):
        if key in attachment:
            return base64.b64decode(attachment[key])
    raise AssertionError(f"no content in {sorted(attachment)}")


def issues(bridge, flavour: str, project: str | None = None) -> list[dict]:
    query = f"?flavour={flavour}" + (f"&project={project}" if project else "")
    r = bridge.stack.sim("GET", f"/_sim/jira/issues{query}")
    assert r.status_code == 200, r.text
    body = r.json()
    return body["issues"] if isinstance(body, dict) else body


def validate_adf(docs: list) -> list[dict]:
    out = subprocess.run(["node", str(REPO / "tests" / "adf" / "validate.js")], input=json.dumps(docs),
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def calls(bridge, route_contains: str, method: str = "POST") -> list[dict]:
    return [c for c in bridge.stack.sim("GET", "/_sim/calls").json()["calls"]
            if c["method"] == method and route_contains in (c.get("route") or c["path"])]
