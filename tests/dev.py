"""`make dev`: the whole system locally, for a person to try.

Starts moto, the Atlassian simulator (with its consent page) and the local gateway running the
function binaries from target/debug, prints a walk-through with copy-pasteable commands, then
waits for Ctrl-C and stops everything.

    .venv/bin/python -m tests.dev [--bin-dir target/debug] [--logs-dir DIR]
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path

from tests.devstack import Stack, StackError

REPO = Path(__file__).resolve().parents[1]
TENANT = "demo"
SCOPES = ["bridge:admin", "bridge:read", "bridge:publish"]
TOKEN_HOURS = 12

# The two reports the walk-through publishes (tests/integration/test_report_pdf.py publishes the
# same ones and checks their PDFs' charts). No single quotes: they go into a shell's '...'.
DEMO_RETROSPECTIVE = {
    "kind": "retrospective", "report_id": "r-1", "title": "Sprint 1 retrospective", "team": "Demo",
    "date": "2026-11-25", "facilitator": "Ana", "participants": ["Ana", "Ben", "Chloé", "Dev"],
    "link": "https://app.example.test/r/1",
    "sections": [
        {"title": "Went well", "items": [
            {"text": "Shipped the release on time", "votes": 5, "author": "Ben"},
            {"text": "Pairing on the hard parts", "votes": 3, "author": "Chloé"},
            {"text": "The new CI cache", "votes": 2, "group": "CI"},
            {"text": "Demo day", "votes": 1},
            {"text": "Cake on Friday", "votes": 0}]},
        {"title": "To improve", "items": [
            {"text": "Flaky integration tests block merges", "votes": 4, "group": "CI"},
            {"text": "Too many meetings on Tuesdays", "votes": 4, "author": "Dev"},
            {"text": "Unclear ownership of the staging environment", "votes": 1}]},
    ],
    "action_items": [
        {"id": "a-1", "title": "Quarantine the flaky tests and fix them one by one", "assignee_email": "ben@example.test",
         "due_date": "2026-12-01"},
        {"id": "a-2", "title": "Move the Tuesday syncs to one weekly meeting", "due_date": "2026-12-08"},
    ],
}
DEMO_HEALTH_CHECK = {
    "kind": "health_check", "report_id": "h-1", "title": "Q4 health check", "team": "Demo",
    "date": "2026-11-26", "link": "https://app.example.test/h/1",
    "dimensions": [
        {"name": "Speed", "score": 7.5, "previous_score": 6.0, "trend": "up", "comments": ["Builds got faster"]},
        {"name": "Fun", "score": 3.5, "previous_score": 5.0, "trend": "down", "comments": ["Too many meetings"]},
        {"name": "Ownership", "score": 6.0, "previous_score": 6.0, "trend": "flat", "comments": []},
        {"name": "Learning", "score": 8.5, "previous_score": 7.0, "trend": "up", "comments": ["Brown-bag sessions help"]},
        {"name": "Support", "score": 5.0, "previous_score": 3.5, "trend": "up", "comments": []},
    ],
}


def shell_json(body: dict) -> str:
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    assert "'" not in text, "the walk-through quotes the JSON in single quotes"
    return text


def walkthrough(stack: Stack, token: str) -> str:
    gw = stack.gateway_url
    retro, health = shell_json(DEMO_RETROSPECTIVE), shell_json(DEMO_HEALTH_CHECK)
    return f"""
================================================================================
 Atlassian Bridge — local stack is up
================================================================================
 gateway (API Gateway + Lambda)  {gw}
 Atlassian simulator             {stack.sim_url}
 moto (DynamoDB, KMS, Secrets)   {stack.moto_url}
 logs                            {stack.logs_dir}/
     gateway.log, sim.log, moto.log, and one <function>.log per function
     (e.g.  tail -f {stack.logs_dir}/oauth-callback.log {stack.logs_dir}/connections.log)

 A JWT for tenant "{TENANT}" with scopes "{' '.join(SCOPES)}" (valid {TOKEN_HOURS} h) is below.

 1. In another terminal, set the token and the gateway URL:

    export TOKEN='{token}'
    export GW='{gw}'

 2. Start the OAuth connect flow; it answers with an authorize_url:

    curl -s -X POST $GW/v1/tenants/{TENANT}/connections/atlassian/oauth/start -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{{"return_url":"'$GW'/_dev/return"}}'

    or keep the URL in a variable:

    AUTH_URL=$(curl -s -X POST $GW/v1/tenants/{TENANT}/connections/atlassian/oauth/start -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{{"return_url":"'$GW'/_dev/return"}}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["authorize_url"])'); echo "$AUTH_URL"

 3. Open the authorize_url in a browser: the simulator's consent page shows the requested
    permissions and sites; choose Accept. The browser goes back through {gw}/v1/oauth/callback
    and lands on {gw}/_dev/return?...status=pending_confirmation&confirmation=CODE

    Nothing is connected yet: the SaaS backend confirms the consent under the tenant's token
    within 10 minutes (a consent link forwarded to another company's admin is never confirmed):

    curl -s -X POST $GW/v1/tenants/{TENANT}/connections/atlassian/oauth/confirm -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{{"confirmation":"CODE"}}'

    Without a browser, follow the same steps by hand:

    PAGE=$(curl -s "$AUTH_URL"); echo "$PAGE"     # the consent page: an HTML form
    REQ=$(echo "$PAGE" | grep -o 'name="request_id" value="[^"]*"' | sed 's/.*value="//; s/"$//')
    SITES=$(echo "$PAGE" | grep -o 'name="site" value="[^"]*"' | sed 's/.*value="/-d site=/; s/"$//' | tr '\\n' ' ')
    curl -si -X POST {stack.sim_url}/authorize/decision -d request_id=$REQ -d decision=accept $SITES | grep -i '^location'
    curl -si "<the Location above: {gw}/v1/oauth/callback?code=...&state=...>" | grep -i '^location'
                                                 # -> {gw}/_dev/return?...status=pending_confirmation&confirmation=CODE
    # then confirm with CODE as above

 4. The connection's status:

    curl -s $GW/v1/tenants/{TENANT}/connections/jira -H "authorization: Bearer $TOKEN"

 5. Publish (optional). Choose where pages and issues go, then send a retrospective, a health
    check and an action item:

    curl -s -X PUT $GW/v1/tenants/{TENANT}/settings/confluence -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{{"space_key":"SPA"}}'
    curl -s -X PUT $GW/v1/tenants/{TENANT}/settings/jira -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{{"project_key":"AGF","issue_type_id":"10002"}}'
    RETRO=$(curl -s -X POST $GW/v1/tenants/{TENANT}/pages -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -H 'Idempotency-Key: demo-1' -d '{retro}'); echo "$RETRO"
    HEALTH=$(curl -s -X POST $GW/v1/tenants/{TENANT}/pages -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -H 'Idempotency-Key: demo-3' -d '{health}'); echo "$HEALTH"
    curl -s -X POST $GW/v1/tenants/{TENANT}/issues -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -H 'Idempotency-Key: demo-2' -d '{{"action_items":[{{"id":"a-1","title":"Quarantine the flaky tests and fix them one by one"}}]}}'

    Send the same request again: the same page and issue come back, nothing new is created.
    What the simulator now holds: {stack.sim_url}/_sim/confluence/pages?space=SPA&written=true
    and {stack.sim_url}/_sim/jira/issues?flavour=cloud&project=AGF

 6. Each page carries its PDF summary (bars by score band for the health check; vote bars, the
    top items and the action items for the retrospective). Save both and open them:

    for R in "$RETRO" "$HEALTH"; do
      PAGE=$(echo "$R" | python3 -c 'import json,sys; print(json.load(sys.stdin)["page_id"])')
      curl -s "{stack.sim_url}/_sim/confluence/attachments?page_id=$PAGE" | python3 -c 'import base64,json,sys; a=json.load(sys.stdin); a=a["attachments"] if isinstance(a,dict) else a; open(sys.argv[1],"wb").write(base64.b64decode(a[0]["content_base64"]))' "summary-$PAGE.pdf"
    done; ls summary-*.pdf

 Ctrl-C stops everything.
================================================================================
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.dev", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin-dir", default=str(REPO / "target" / "debug"),
                        help="where the function binaries are (default: target/debug)")
    parser.add_argument("--logs-dir", default=None,
                        help="default: target/dev-logs/<timestamp>")
    args = parser.parse_args(argv)
    logs_dir = Path(args.logs_dir) if args.logs_dir else (
        REPO / "target" / "dev-logs" / time.strftime("%Y%m%d-%H%M%S"))

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())

    stack = Stack(REPO, logs_dir, args.bin_dir, consent_page=True, deliver_own_events=True)
    print("starting moto, the Atlassian simulator and the gateway ...", flush=True)
    try:
        stack.start()
    except (StackError, RuntimeError, OSError) as exc:
        print(f"make dev: could not start the stack: {exc}", file=sys.stderr)
        return 1
    try:
        token = stack.token(TENANT, SCOPES, exp=int(time.time()) + TOKEN_HOURS * 3600)
        print(walkthrough(stack, token), flush=True)
        while not stop.wait(1.0):
            for problem in stack.exited():
                print(f"make dev: {problem}", file=sys.stderr)
                stop.set()
    finally:
        print("\nstopping ...", flush=True)
        stack.stop()
        print("stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
