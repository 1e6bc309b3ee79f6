"""The local stack: moto (DynamoDB, KMS, Secrets Manager), the Atlassian simulator and the local
gateway running the real function binaries. Used by the integration tests' conftest and by
``make dev`` (tests/dev.py).

    stack = Stack(repo_root, logs_dir, bin_dir)
    stack.start()
    try:
        requests.get(stack.gateway_url + "/v1/...", headers={"authorization": "Bearer " + stack.token("acme", ["bridge:read"])})
    finally:
        stack.stop()

Every child's stdout and stderr go to ``logs_dir/<name>.log`` (moto, sim, gateway; the gateway
writes each function's output to ``logs_dir/<function>.log``).
"""
from __future__ import annotations

import atexit
import base64
import json
import os
import secrets
import shutil
import sys
import threading
import time
from pathlib import Path

import boto3
import jwt
import requests

from tests.gateway import envlist
from tests.gateway.procutil import ChildProcess, free_port
from tests.sim.forge import DEFAULT_APP_ID as FORGE_APP_ID
from tests.sim.spec import default_specs_dir

REGION = "us-east-1"
TABLE_NAME = "atlassian-bridge"
EVENT_BUS = "atlassian-bridge"
EVENT_SOURCE = "atlassian-bridge"
SECRET_PREFIX = "atlassian-bridge/"
CLIENT_SECRET_NAME = "atlassian-bridge/app/oauth-client"
CLIENT_ID = "bridge-local-client"
JWT_ISSUER = "atlassian-bridge-local"
JWT_AUDIENCE = "atlassian-bridge"
TENANT_CLAIM = "tenant_id"
CONNECT_APP_KEY = "com.example.atlassian-bridge"
# As infra/lib/config.ts deploys them: HTTP functions stop at API Gateway's 30 s; the scheduled
# sweep runs a slice of up to five minutes.
FUNCTION_TIMEOUTS = {"keep-alive": 300, "issue-sync": 300}
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                     "AWS_SESSION_TOKEN": "testing"}


class StackError(RuntimeError):
    pass


class Stack:
    def __init__(self, repo_root, logs_dir, bin_dir=None, *, consent_page: bool = False,
                 env_overrides: dict | None = None, deliver_own_events: bool = False,
                 max_concurrency: dict[str, int] | None = None):
        self.repo_root = Path(repo_root).resolve()
        self.logs_dir = Path(logs_dir).resolve()
        self.bin_dir = Path(bin_dir).resolve() if bin_dir else self.repo_root / "target" / "debug"
        self.consent_page = consent_page
        self.env_overrides = dict(env_overrides or {})
        # Per function, Lambda's concurrency limit as the gateway plays it (64 unless given): a
        # function's reserved concurrency, for the fair-share tests.
        self.max_concurrency = dict(max_concurrency or {})
        # Deliver the bridge's own events (routes.json rules with "own": the rest of a 202 issue
        # job) back to their function, as the deployed EventBridge rule does. Off for the
        # integration tests, which deliver them themselves to check each step.
        self.deliver_own_events = deliver_own_events
        self._pump: threading.Thread | None = None
        self._pump_stop = threading.Event()
        self.routes_file = self.repo_root / "shared" / "routes.json"
        self.specs_dir = default_specs_dir()

        self.moto_url = self.sim_url = self.gateway_url = ""
        self.jwt_secret = secrets.token_urlsafe(32)
        self.table_name = TABLE_NAME
        self.kms_key_id = ""
        self.client_id = CLIENT_ID
        self.client_secret_name = CLIENT_SECRET_NAME
        self.oauth_client_secret = secrets.token_urlsafe(32)
        self.state_signing_key = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
        self.function_env: dict[str, str] = {}
        self.functions: list[str] = []
        self._children: list[ChildProcess] = []
        self._moto = self._sim = self._gateway = None
        self._started = False

    # ------------------------------------------------------------------ helpers
    def _python(self) -> str:
        venv = self.repo_root / ".venv" / "bin" / "python"
        return str(venv) if venv.exists() else sys.executable

    def _moto_server(self) -> list[str]:
        """moto behind one lock (tests/moto_serial.py says why)."""
        return [self._python(), "-m", "tests.moto_serial"]

    def _child_env(self) -> dict:
        env = dict(os.environ)
        env.update(DUMMY_CREDENTIALS)
        env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = REGION
        env.pop("AWS_PROFILE", None)
        return env

    def _function_names(self) -> list[str]:
        doc = json.loads(self.routes_file.read_text())
        names = {r["function"] for r in doc.get("routes", [])}
        names |= {r["function"] for r in doc.get("events", [])}
        names |= {s["function"] for s in doc.get("schedules", [])}
        return sorted(names)

    # ------------------------------------------------------------------ start / stop
    def start(self) -> "Stack":
        if self._started:
            return self
        self.functions = self._function_names()
        missing = [f for f in self.functions if not os.access(self.bin_dir / f, os.X_OK)]
        if missing:
            raise StackError(
                f"function binaries missing in {self.bin_dir}: {', '.join(missing)} "
                f"(build them first: cargo build)")
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self._started = True
        atexit.register(self.stop)
        try:
            self._start_moto()
            self._provision()
            self._start_sim()
            self._start_gateway()
            self.register_client()
            if self.deliver_own_events:
                self._start_own_event_pump()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop everything (gateway first: it stops the function instances). Idempotent."""
        self._pump_stop.set()
        if self._pump is not None:
            self._pump.join(timeout=10)
            self._pump = None
        for child in reversed(self._children):
            try:
                child.stop()
            except Exception as exc:  # noqa: BLE001 - keep stopping the others
                print(f"devstack: stopping {child.name} failed: {exc}", file=sys.stderr)
        self._children.clear()
        if self._started:
            atexit.unregister(self.stop)
            self._started = False

    def exited(self) -> list[str]:
        """The children that died under us, as messages naming their logs (empty when all is well)."""
        return [f"{c.name} exited with {c.proc.returncode}; see {c.log_path}"
                for c in self._children if not c.running()]

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ moto
    def _start_moto(self) -> None:
        port = free_port()
        child = ChildProcess("moto", [*self._moto_server(), "-H", "127.0.0.1", "-p", str(port)],
                             self.logs_dir / "moto.log", env=self._child_env(), cwd=self.repo_root)
        self._children.append(child.start())
        self._moto = child
        self.moto_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(self.moto_url + "/moto-api/", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if not child.running():
                raise StackError(f"moto exited with {child.proc.returncode}:\n{child.log_tail()}")
            if time.monotonic() > deadline:
                raise StackError(f"moto not answering on {self.moto_url}:\n{child.log_tail()}")
            time.sleep(0.1)

    def aws(self, service: str):
        """A boto3 client for ``service`` pointed at moto."""
        return boto3.client(service, endpoint_url=self.moto_url, region_name=REGION,
                            aws_access_key_id="testing", aws_secret_access_key="testing",
                            aws_session_token="testing")

    def _provision(self) -> None:
        ddb = self.aws("dynamodb")
        ddb.create_table(
            TableName=self.table_name, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                       {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"},
                                  {"AttributeName": "sweep_pk", "AttributeType": "S"},
                                  {"AttributeName": "sweep_sk", "AttributeType": "S"}],
            # The sparse index the keep-alive sweep pages every tenant's connections through
            # (shared/src/store/dynamo/mod.rs), as infra creates it.
            GlobalSecondaryIndexes=[{
                "IndexName": "sweep",
                "KeySchema": [{"AttributeName": "sweep_pk", "KeyType": "HASH"},
                              {"AttributeName": "sweep_sk", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "ALL"}}])
        ddb.get_waiter("table_exists").wait(TableName=self.table_name,
                                            WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        ddb.update_time_to_live(TableName=self.table_name, TimeToLiveSpecification={
            "Enabled": True, "AttributeName": "ttl"})
        self.kms_key_id = self.aws("kms").create_key(
            Description="atlassian-bridge local secrets key")["KeyMetadata"]["KeyId"]
        self.aws("secretsmanager").create_secret(
            Name=self.client_secret_name, KmsKeyId=self.kms_key_id,
            SecretString=json.dumps({"client_secret": self.oauth_client_secret,
                                     "state_signing_key": self.state_signing_key}))
        # The bus the functions publish to, and a rule that copies every outgoing event into an
        # SQS queue, so tests (and a person running `make dev`) can read them back. Only a tap:
        # no function reads SQS; events reach the functions as EventBridge invocations (the gateway).
        events, sqs = self.aws("events"), self.aws("sqs")
        events.create_event_bus(Name=EVENT_BUS)
        self.events_queue_url = sqs.create_queue(QueueName="bridge-events-out")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.events_queue_url,
                                             AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="bridge-events-out", EventBusName=EVENT_BUS,
                        EventPattern=json.dumps({"source": [EVENT_SOURCE]}))
        events.put_targets(Rule="bridge-events-out", EventBusName=EVENT_BUS,
                           Targets=[{"Id": "queue", "Arn": queue_arn}])
        # One dead-letter queue per event-consuming (and scheduled) function, as infra's
        # EventsConstruct configures (`<deployment>-<function>-dlq`; here `<function>-dlq`): the
        # gateway's asynchronous invocation (PUT /_gateway/chaos) parks what still fails there.
        routes = json.loads(self.routes_file.read_text())
        self.dlq_urls = {fn: sqs.create_queue(QueueName=f"{fn}-dlq")["QueueUrl"] for fn in sorted(
            {e["function"] for e in routes.get("events", [])} | {s["function"] for s in routes.get("schedules", [])})}

    def _start_own_event_pump(self) -> None:
        """A rule for our own event types into a queue of their own, and a thread that hands each
        to the gateway's EventBridge delivery (which matches it to its "own" rule)."""
        own = [r["detail_type"] for r in json.loads(self.routes_file.read_text()).get("events", []) if r.get("own")]
        if not own:
            return
        events, sqs = self.aws("events"), self.aws("sqs")
        queue_url = sqs.create_queue(QueueName="bridge-own-events")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="bridge-own-events", EventBusName=EVENT_BUS,
                        EventPattern=json.dumps({"source": [EVENT_SOURCE], "detail-type": own}))
        events.put_targets(Rule="bridge-own-events", EventBusName=EVENT_BUS, Targets=[{"Id": "own", "Arn": queue_arn}])

        def pump() -> None:
            while not self._pump_stop.is_set():
                try:
                    # No long poll: moto serves one request at a time (tests/moto_serial.py), and
                    # a waiting receive would hold every other request behind it.
                    batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                                WaitTimeSeconds=0).get("Messages", [])
                    if not batch:
                        self._pump_stop.wait(0.25)
                    for message in batch:
                        event = json.loads(message["Body"])
                        requests.post(f"{self.gateway_url}/_gateway/events", timeout=300, json={
                            "Source": event["source"], "DetailType": event["detail-type"],
                            "Detail": json.dumps(event["detail"])})
                        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
                except Exception as exc:  # noqa: BLE001 - keep pumping; the message is redelivered
                    if not self._pump_stop.is_set():
                        print(f"devstack: delivering our own event failed: {exc}", file=sys.stderr)
                        self._pump_stop.wait(1)

        self._pump = threading.Thread(target=pump, name="own-event-pump", daemon=True)
        self._pump.start()

    def published_events(self) -> list[dict]:
        """Drains the queue of outgoing events (the bus's rule copies each one there)."""
        sqs, out = self.aws("sqs"), []
        while True:
            batch = sqs.receive_message(QueueUrl=self.events_queue_url, MaxNumberOfMessages=10,
                                        WaitTimeSeconds=0).get("Messages", [])
            if not batch:
                return out
            for message in batch:
                out.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.events_queue_url, ReceiptHandle=message["ReceiptHandle"])

    def dead_letters(self, function: str) -> list[dict]:
        """Drains a function's dead-letter queue: each message's body (the event) and attributes."""
        sqs, out = self.aws("sqs"), []
        while True:
            batch = sqs.receive_message(QueueUrl=self.dlq_urls[function], MaxNumberOfMessages=10,
                                        MessageAttributeNames=["All"], WaitTimeSeconds=0).get("Messages", [])
            if not batch:
                return out
            for message in batch:
                out.append({"event": json.loads(message["Body"]), "attributes": {
                    k: v.get("StringValue") for k, v in message.get("MessageAttributes", {}).items()}})
                sqs.delete_message(QueueUrl=self.dlq_urls[function], ReceiptHandle=message["ReceiptHandle"])

    def set_function_env(self, function: str, changes: dict) -> None:
        """Changes a function's environment as a deployment would (null removes a variable); its
        instances are retired, so the next invocation cold-starts with the new values."""
        resp = requests.put(f"{self.gateway_url}/_gateway/functions/{function}/env", json=changes, timeout=30)
        resp.raise_for_status()

    # ------------------------------------------------------------------ simulator
    def _start_sim(self) -> None:
        argv = [self._python(), "-m", "tests.sim", "--host", "127.0.0.1", "--port", "0",
                "--specs", str(self.specs_dir)]
        if self.consent_page:
            argv.append("--consent-page")
        child = ChildProcess("sim", argv, self.logs_dir / "sim.log", env=self._child_env(),
                             cwd=self.repo_root)
        self._children.append(child.start())
        self._sim = child
        self.sim_url = child.wait_ready(timeout=30).rstrip("/")

    def sim(self, method: str, path: str, json=None) -> requests.Response:
        """A call to the simulator (its control API lives under /_sim/...)."""
        return requests.request(method, self.sim_url + path, json=json, timeout=10)

    def register_client(self) -> None:
        """(Re-)register our OAuth client with the simulator (needed again after POST /_sim/reset)."""
        resp = self.sim("PUT", "/_sim/oauth/client", json={
            "client_id": self.client_id, "client_secret": self.oauth_client_secret,
            "redirect_uris": [self.gateway_url + "/v1/oauth/callback"]})
        if not resp.ok:
            raise StackError(f"registering the OAuth client with the simulator failed: "
                             f"{resp.status_code} {resp.text}")
        # The local gateway listens on plain http at loopback; real Jira delivers to HTTPS only.
        resp = self.sim("PUT", "/_sim/quirks", json={"webhooks_allow_http_loopback": True})
        if not resp.ok:
            raise StackError(f"configuring the simulator's webhooks failed: {resp.status_code} {resp.text}")

    # ------------------------------------------------------------------ gateway
    def _build_function_env(self) -> dict[str, str]:
        env = {
            "AWS_ENDPOINT_URL": self.moto_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": REGION,
            "RUST_LOG": "info",
            "BRIDGE_TABLE_NAME": self.table_name,
            "BRIDGE_SECRET_PREFIX": SECRET_PREFIX,
            "BRIDGE_KMS_KEY_ID": self.kms_key_id,
            "BRIDGE_OAUTH_CLIENT_ID": self.client_id,
            "BRIDGE_OAUTH_CLIENT_SECRET_NAME": self.client_secret_name,
            "BRIDGE_OAUTH_REDIRECT_URI": self.gateway_url + "/v1/oauth/callback",
            # Where the simulator delivers the dynamic webhooks of tenants who opted in.
            "BRIDGE_JIRA_WEBHOOK_URL": self.gateway_url + "/v1/webhooks/jira",
            "BRIDGE_ALLOWED_RETURN_URLS": f"{self.gateway_url}/_dev/return,https://app.example.test/",
            "BRIDGE_ATLASSIAN_AUTH_URL": self.sim_url,
            "BRIDGE_ATLASSIAN_API_URL": self.sim_url,
            "BRIDGE_TENANT_CLAIM": TENANT_CLAIM,
            # The Connect app (issue 14): its descriptor's baseUrl (the install JWTs' aud) is the
            # gateway; the install-key CDN is the simulator's (tests/sim/connect.py).
            "BRIDGE_PUBLIC_BASE_URL": self.gateway_url,
            "BRIDGE_CONNECT_APP_KEY": CONNECT_APP_KEY,
            "BRIDGE_CONNECT_INSTALL_KEYS_URL": self.sim_url + "/connect-install-keys",
            # Test-only: the simulator listens on 127.0.0.1, which the egress guard refuses by default.
            "BRIDGE_EGRESS_ALLOW_LOOPBACK_FOR_TESTS": "true",
            "BRIDGE_EVENT_BUS_NAME": EVENT_BUS,
            "BRIDGE_EVENT_SOURCE": EVENT_SOURCE,
            # Short leases, so a retry after an injected crash takes over within seconds.
            "BRIDGE_JOB_LEASE_SECONDS": "3",
            # Above the simulator's search lag (Cloud 3 s, DC 1 s), as production's default is
            # above Jira's: a marker search is trusted only after it.
            "BRIDGE_JIRA_INDEX_DELAY_SECONDS": "4",
            # The suite races one tenant's requests and deliveries against each other on purpose
            # (50 verifies at once, 5 deliveries of one event); fair shares are tested with a
            # small share of their own in test_fair_shares.py.
            "BRIDGE_TENANT_SLOTS": "64",
            # The PDF's CJK font where `make fonts` puts it (in Lambda: the fonts layer).
            "BRIDGE_CJK_FONT_PATH": str(self.repo_root / "target" / "fonts" / "NotoSansCJK-Regular.ttc"),
            # The Forge app the simulator plays (tests/sim/forge.py): its id is the FITs' aud, its
            # JWKS the simulator's.
            "BRIDGE_FORGE_APP_ID": FORGE_APP_ID,
            "BRIDGE_FORGE_JWKS_URL": self.sim_url + "/forge/.well-known/jwks.json",
        }
        env.update({k: str(v) for k, v in self.env_overrides.items()})
        try:
            envlist.check(env, "the functions' environment")
        except ValueError as exc:
            raise StackError(str(exc)) from None
        return env

    def _start_gateway(self) -> None:
        # The functions' env holds the gateway's own URL (OAuth redirect URI), so its port is
        # chosen up front; if another process takes it in between, try another.
        consumers = {e["function"] for e in json.loads(self.routes_file.read_text()).get("events", [])}
        for attempt in range(3):
            port = free_port()
            self.gateway_url = f"http://127.0.0.1:{port}"
            self.function_env = self._build_function_env()
            config = {
                "host": "127.0.0.1", "port": port, "routes_file": str(self.routes_file),
                "functions": {name: {"command": [str(self.bin_dir / name)], "env": self.function_env,
                                     "timeout_seconds": FUNCTION_TIMEOUTS.get(name, 30), "max_concurrency": self.max_concurrency.get(name, 64),
                                     # As infra: every event consumer's on-failure destination is the bus.
                                     "on_failure_to_bus": name in consumers}
                              for name in self.functions},
                "jwt": {"secret": self.jwt_secret, "issuer": JWT_ISSUER, "audience": JWT_AUDIENCE},
                "logs_dir": str(self.logs_dir),
                "region": REGION,
            }
            config_path = self.logs_dir / "gateway-config.json"
            config_path.write_text(json.dumps(config, indent=2))
            child = ChildProcess("gateway", [self._python(), "-m", "tests.gateway", "--config",
                                             str(config_path)],
                                 self.logs_dir / "gateway.log", env=self._child_env(),
                                 cwd=self.repo_root)
            child.start()
            try:
                child.wait_ready(timeout=30)
            except RuntimeError:
                child.stop()
                if attempt < 2 and "Address already in use" in child.log_tail():
                    continue
                raise
            self._children.append(child)
            self._gateway = child
            return

    def fire_schedule(self, name: str) -> dict:
        """Fires a schedule (routes.json `schedules`) now: its function runs with its input, as
        EventBridge Scheduler would invoke it. Returns how the invocation ended."""
        resp = requests.post(f"{self.gateway_url}/_gateway/schedules/{name}", timeout=300)
        resp.raise_for_status()
        return resp.json()

    def invoke(self, function: str, payload: dict) -> dict:
        """Invokes a function directly with ``payload`` (Lambda's Invoke); how it ended."""
        resp = requests.post(f"{self.gateway_url}/_gateway/functions/{function}/invoke", json=payload, timeout=300)
        resp.raise_for_status()
        return resp.json()

    def recycle(self, function: str) -> None:
        """Stop every instance of ``function``: its next invocation cold-starts."""
        resp = requests.post(f"{self.gateway_url}/_gateway/functions/{function}/recycle", timeout=30)
        resp.raise_for_status()

    # ------------------------------------------------------------------ callers
    def token(self, tenant: str, scopes, **extra_claims) -> str:
        """An HS256 JWT the gateway's authorizer accepts, valid for one hour. ``scopes`` is a list or
        a space-separated string; ``extra_claims`` override or add claims (None removes one)."""
        now = int(time.time())
        claims = {
            "sub": f"user@{tenant}",
            TENANT_CLAIM: tenant,
            "scope": scopes if isinstance(scopes, str) else " ".join(scopes),
            "iss": JWT_ISSUER,
            "aud": JWT_AUDIENCE,
            "iat": now,
            "exp": now + 3600,
        }
        claims.update(extra_claims)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, self.jwt_secret, algorithm="HS256")
