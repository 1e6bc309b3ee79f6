"""tests/moto_serial.py's TransactWriteItems: all-or-nothing as moto's own, without copying tables."""
from __future__ import annotations

import copy
import json

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.models.table import Table

import tests.moto_serial  # noqa: F401  (patches moto's DynamoDB backend)


@pytest.fixture
def table(monkeypatch):
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="t", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}])
        for i in range(50):
            client.put_item(TableName="t", Item={"pk": {"S": "T"}, "sk": {"S": f"OTHER#{i}"}})
        client.put_item(TableName="t", Item={"pk": {"S": "T"}, "sk": {"S": "A"}, "v": {"N": "1"}})
        table_copies = []
        real = copy.deepcopy

        def counting(obj, memo=None):
            if isinstance(obj, Table):
                table_copies.append(obj)
            return real(obj, memo)

        monkeypatch.setattr(copy, "deepcopy", counting)
        yield client, table_copies


def update(sk, value, condition="attribute_exists(pk)"):
    return {"Update": {"TableName": "t", "Key": {"pk": {"S": "T"}, "sk": {"S": sk}},
                       "UpdateExpression": "SET v = :v", "ConditionExpression": condition,
                       "ExpressionAttributeValues": {":v": {"N": str(value)}}}}


def items(client):
    found = client.query(TableName="t", KeyConditionExpression="pk = :p",
                         ExpressionAttributeValues={":p": {"S": "T"}})["Items"]
    return {i["sk"]["S"]: i.get("v", {}).get("N") for i in found}


def test_a_cancelled_transaction_changes_nothing(table):
    client, table_copies = table
    before = items(client)
    new = {"Put": {"TableName": "t", "Item": {"pk": {"S": "T"}, "sk": {"S": "NEW"}, "v": {"N": "5"}},
                   "ConditionExpression": "attribute_not_exists(pk)"}}
    with pytest.raises(ClientError) as refused:
        # The update of A and the put of NEW succeed; the last action's condition fails.
        client.transact_write_items(TransactItems=[update("A", 2), new, update("MISSING", 3)])
    assert refused.value.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = [r["Code"] for r in refused.value.response["CancellationReasons"]]
    assert reasons == ["None", "None", "ConditionalCheckFailed"]
    assert items(client) == before
    assert table_copies == []


def test_a_transaction_that_holds_applies_every_action(table):
    client, table_copies = table
    new = {"Put": {"TableName": "t", "Item": {"pk": {"S": "T"}, "sk": {"S": "NEW"}, "v": {"N": "5"}},
                   "ConditionExpression": "attribute_not_exists(pk)"}}
    client.transact_write_items(TransactItems=[update("A", 2), new])
    after = items(client)
    assert (after["A"], after["NEW"]) == ("2", "5")
    assert len(after) == 52
    assert table_copies == []


def _wsgi(app, method, path, body=b""):
    import io
    seen = {}

    def start_response(status, headers):
        seen["status"] = status
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "CONTENT_LENGTH": str(len(body)),
               "wsgi.input": io.BytesIO(body)}
    out = b"".join(app(environ, start_response))
    return seen["status"], out


def test_latency_is_seeded_switchable_and_counted():
    import json
    calls = []

    def moto(environ, start_response):
        calls.append(environ["PATH_INFO"])
        start_response("200 OK", [])
        return [b"{}"]

    serial = tests.moto_serial.Serialized(moto)
    status, _ = _wsgi(serial, "PUT", "/_serial/latency", b'{"seed": 1, "probability": 2}')
    assert status.startswith("400")
    status, _ = _wsgi(serial, "PUT", "/_serial/latency", b'{"seed": 1, "min_ms": 9, "max_ms": 1}')
    assert status.startswith("400")
    # Zero-length waits keep the test instant; the draws and the counters are what is checked.
    body = json.dumps({"seed": 7, "probability": 0.5, "min_ms": 0, "max_ms": 0}).encode()
    status, _ = _wsgi(serial, "PUT", "/_serial/latency", body)
    assert status.startswith("200")
    for _ in range(40):
        _wsgi(serial, "POST", "/")
    assert calls == ["/"] * 40, "the control route must never reach moto"
    _, got = _wsgi(serial, "DELETE", "/_serial/latency")
    first = json.loads(got)["latency"]
    assert first["requests"] == 40 and 5 < first["delayed"] < 35
    # The same seed draws the same requests; after DELETE nothing is drawn.
    a, b = tests.moto_serial.Latency(7, 0.5, 1, 2), tests.moto_serial.Latency(7, 0.5, 1, 2)
    draws = [a.draw() for _ in range(20)]
    assert draws == [b.draw() for _ in range(20)]
    assert all(w == 0 or 0.001 <= w <= 0.002 for w in draws) and any(draws)
    _, got = _wsgi(serial, "GET", "/_serial/latency")
    assert json.loads(got)["latency"] is None


def test_the_serialized_server_counts_each_operations_requests_and_busy_time():
    served = []

    def app(environ, start_response):
        served.append(environ["PATH_INFO"])
        start_response("200 OK", [])
        return [b"{}"]

    serial = tests.moto_serial.Serialized(app)
    for target in ("DynamoDB_20120810.GetItem", "DynamoDB_20120810.GetItem", None):
        environ = {"PATH_INFO": "/"} | ({"HTTP_X_AMZ_TARGET": target} if target else {})
        assert serial(environ, lambda *a: None) == [b"{}"]
    statuses = []
    [body] = serial({"PATH_INFO": tests.moto_serial.STATS_PATH}, lambda status, headers: statuses.append(status))
    stats = json.loads(body)
    assert statuses == ["200 OK"] and served == ["/", "/", "/"]      # the stats never reach moto
    assert stats["requests"] == 3
    assert {op: o["requests"] for op, o in stats["operations"].items()} == {"DynamoDB_20120810.GetItem": 2, "other": 1}
    assert stats["busy_ms"] >= 0
