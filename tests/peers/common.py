"""What both peers share: the job's inputs, the Jira client, the ledger's keys and the issue
fields. The ledger items use our table's key schema (`TENANT#{tenant}` / `ACTION#{item id}`, see
shared/src/store/dynamo/mod.rs) under a tenant of their own, so peers and bridge never meet.

A peer job is `run(job, items) -> list[Outcome]`, items as our API takes them
(`{"id", "title", "assignee_email"?}`); assignees are matched as the bridge's
`assignee_matching: email` does: assigned when exactly one assignable user has that email."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field

from atlassian import Jira

# The library logs a WARNING per created issue ("Creating issue ..."); with no logging set up that
# goes to stderr line by line, which would time the terminal, not the peer.
logging.getLogger("atlassian").setLevel(logging.ERROR)

# Jira DC's user search is `user/search?username=` in atlassian-python-api
# (`Jira.user_find_by_user_string`), which does not filter by what the project can be assigned;
# the library has no call for `user/assignable/search?username=&project=` (its assignable helpers
# take an issue key or list a whole project), so the peers call that resource through the
# library's own `Jira.get`, as an integration using the library would.
ASSIGNABLE = "user/assignable/search"


@dataclass
class Job:
    """One tenant's job: where its issues go and where its ledger lives."""
    jira_url: str                  # the DC base URL, e.g. <sim>/dc/jira-dc/jira
    username: str
    password: str
    project_key: str
    issue_type_id: str
    ddb: object                    # a boto3 DynamoDB client
    table: str
    tenant: str = field(default_factory=lambda: "peer-" + uuid.uuid4().hex[:12])
    retry_429: bool = False        # atlassian-python-api's backoff_and_retry (honours Retry-After)

    def jira(self) -> Jira:
        return Jira(url=self.jira_url, username=self.username, password=self.password, cloud=False,
                    backoff_and_retry=self.retry_429, max_backoff_seconds=30, max_backoff_retries=10)

    def key(self, item_id: str) -> dict:
        return {"pk": {"S": f"TENANT#{self.tenant}"}, "sk": {"S": f"ACTION#{item_id}"}}


@dataclass
class Outcome:
    item_id: str
    issue_key: str | None = None
    issue_id: str | None = None
    error: str | None = None
    skipped: bool = False          # the ledger says another run has it (sequential only)


def fields(job: Job, item: dict, assignee: str | None) -> dict:
    """The create fields the bridge sends for an item without description or due date: project,
    issue type, summary, labels (a per-item marker, as ours, so duplicates are countable), and the
    assignee by DC user name when one matched."""
    out = {"project": {"key": job.project_key}, "issuetype": {"id": job.issue_type_id},
           "summary": item["title"][:255], "labels": [f"peer-{item['id']}"[:255]]}
    if assignee:
        out["assignee"] = {"name": assignee}
    return out


def find_assignee(jira: Jira, project_key: str, email: str) -> str | None:
    """The DC user name of the one assignable user with exactly this email, else None."""
    users = jira.get(jira.resource_url(ASSIGNABLE),
                     params={"username": email, "project": project_key, "maxResults": 10}) or []
    matches = [u for u in users if (u.get("emailAddress") or "").lower() == email.lower()]
    return matches[0]["name"] if len(matches) == 1 else None


def now_ms() -> int:
    return int(time.time() * 1000)
