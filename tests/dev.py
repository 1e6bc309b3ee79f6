"""`make dev`: the whole system locally, for a person to try.

Starts moto, the Atlassian simulator (with its consent page) and the local gateway running the
function binaries from target/debug, prints a walk-through with copy-pasteable commands, then
waits for Ctrl-C and stops everything.

    .venv/bin/python -m tests.dev [--bin-dir target/debug] [--logs-dir DIR]
"""
from __future__ import annotations

import argparse
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


def walkthrough(stack: Stack, token: str) -> str:
    gw = stack.gateway_url
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

 5. Publish (optional). Choose where pages and issues go, then send a report and an action item:

    curl -s -X PUT $GW/v1/tenants/{TENANT}/settings/confluence -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{{"space_key":"SPA"}}'
    curl -s -X PUT $GW/v1/tenants/{TENANT}/settings/jira -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{{"project_key":"AGF","issue_type_id":"10002"}}'
    curl -s -X POST $GW/v1/tenants/{TENANT}/pages -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -H 'Idempotency-Key: demo-1' -d '{{"kind":"retrospective","report_id":"r-1","title":"Sprint 1 retro","team":"Demo","date":"2026-11-25","link":"https://app.example.test/r/1","sections":[{{"title":"Went well","items":[{{"text":"Shipped it","votes":3}}]}}]}}'
    curl -s -X POST $GW/v1/tenants/{TENANT}/issues -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -H 'Idempotency-Key: demo-2' -d '{{"action_items":[{{"id":"a-1","title":"Write the runbook"}}]}}'

    Send the same request again: the same page and issue come back, nothing new is created.
    What the simulator now holds: {stack.sim_url}/_sim/confluence/pages?space=SPA&written=true
    and {stack.sim_url}/_sim/jira/issues?flavour=cloud&project=AGF

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
