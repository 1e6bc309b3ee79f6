"""tests/moto_serial.py's TransactWriteItems: all-or-nothing as moto's own, without copying tables."""
from __future__ import annotations

import copy

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
