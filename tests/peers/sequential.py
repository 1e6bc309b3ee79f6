"""The sequential peer: per action item a conditional `put_item` claim (`attribute_not_exists`),
an assignee lookup when the item has an email, `Jira.issue_create`, and an `update_item` record.
Exactly-once as far as the claim goes (a second run skips claimed items; a crash between create
and record leaves a claimed item without its key, which this peer does not recover), one round
trip after the other: what the per-item `POST /issue` of a simple integration costs."""

from __future__ import annotations

from botocore.exceptions import ClientError
from requests import HTTPError

from .common import Job, Outcome, fields, find_assignee, now_ms


def run(job: Job, items: list[dict]) -> list[Outcome]:
    jira, out = job.jira(), []
    for item in items:
        key = job.key(item["id"])
        try:
            job.ddb.put_item(TableName=job.table, Item={
                **key, "state": {"S": "pending"}, "owner": {"S": job.tenant},
                "claimed_at_ms": {"N": str(now_ms())}},
                ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            out.append(Outcome(item["id"], skipped=True))
            continue
        email = item.get("assignee_email")
        assignee = find_assignee(jira, job.project_key, email) if email else None
        try:
            created = jira.issue_create(fields(job, item, assignee))
        except HTTPError as exc:
            job.ddb.update_item(TableName=job.table, Key=key, UpdateExpression="SET #s = :failed",
                                ExpressionAttributeNames={"#s": "state"},
                                ExpressionAttributeValues={":failed": {"S": "failed"}})
            out.append(Outcome(item["id"], error=str(exc)))
            continue
        job.ddb.update_item(
            TableName=job.table, Key=key,
            UpdateExpression="SET #s = :created, issue_key = :k, issue_id = :i REMOVE #o",
            ExpressionAttributeNames={"#s": "state", "#o": "owner"},
            ExpressionAttributeValues={":created": {"S": "created"}, ":k": {"S": created["key"]},
                                       ":i": {"S": str(created["id"])}})
        out.append(Outcome(item["id"], issue_key=created["key"]))
    return out
