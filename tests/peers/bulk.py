"""The bulk peer: `batch_write_item` claims (25 items per call, DynamoDB's maximum), one assignee
lookup per distinct email, `Jira.create_issues` by 50 (`POST issue/bulk`, Jira's maximum), and
`batch_write_item` records. No exactly-once: BatchWriteItem takes no conditions, so the "claim"
is only a pending marker and a second run (or a retried delivery) creates every issue again. The
cheapest shape the APIs allow, one call after the other."""

from __future__ import annotations

import time

from requests import HTTPError

from .common import Job, Outcome, fields, find_assignee, now_ms

WRITES_PER_BATCH = 25
ISSUES_PER_BULK = 50


def batch_put(job: Job, items: list[dict]) -> None:
    """Every item written, 25 per BatchWriteItem, resending what DynamoDB leaves unprocessed."""
    for start in range(0, len(items), WRITES_PER_BATCH):
        requests = {job.table: [{"PutRequest": {"Item": i}} for i in items[start:start + WRITES_PER_BATCH]]}
        delay = 0.05
        while requests:
            requests = job.ddb.batch_write_item(RequestItems=requests).get("UnprocessedItems") or {}
            if requests:
                time.sleep(delay)
                delay = min(delay * 2, 1.0)


def run(job: Job, items: list[dict]) -> list[Outcome]:
    jira = job.jira()
    batch_put(job, [{**job.key(i["id"]), "state": {"S": "pending"}, "owner": {"S": job.tenant},
                     "claimed_at_ms": {"N": str(now_ms())}} for i in items])
    emails = {i["assignee_email"] for i in items if i.get("assignee_email")}
    assignees = {email: find_assignee(jira, job.project_key, email) for email in sorted(emails)}

    outcomes: dict[str, Outcome] = {}
    for start in range(0, len(items), ISSUES_PER_BULK):
        chunk = items[start:start + ISSUES_PER_BULK]
        try:
            answer = jira.create_issues([{"fields": fields(job, i, assignees.get(i.get("assignee_email")))}
                                         for i in chunk]) or {}
        except HTTPError as exc:                        # 400: not one element was created
            answer = {"errors": [{"failedElementNumber": n, "elementErrors": str(exc)} for n in range(len(chunk))]}
        failed = {e["failedElementNumber"]: e for e in answer.get("errors") or []}
        created = iter(answer.get("issues") or [])     # the created ones, in request order
        for n, item in enumerate(chunk):
            if n in failed:
                outcomes[item["id"]] = Outcome(item["id"], error=str(failed[n].get("elementErrors")))
            else:
                issue = next(created)
                outcomes[item["id"]] = Outcome(item["id"], issue_key=issue["key"], issue_id=str(issue["id"]))
    batch_put(job, [{**job.key(o.item_id), "state": {"S": "created" if o.issue_key else "failed"},
                     **({"issue_key": {"S": o.issue_key}, "issue_id": {"S": o.issue_id}} if o.issue_key else {})}
                    for o in outcomes.values()])
    return [outcomes[i["id"]] for i in items]
