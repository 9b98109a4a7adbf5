"""The stack's key store: one DynamoDB item per key in the keys table (infra/components/keys.py).

The hash key is the key id (`service.contract.KEYS_HASH_KEY`), so verifying a key is one
consistent GetItem. The API's role may only GetItem; creating, listing and revoking keys need
operator credentials (`ragctl keys --from-stack`, the post-deploy suite).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from service.api.keys import ApiKeyRecord, KeyExists
from service.api.keys_sqlite import record_from_json, record_to_json
from service.contract import KEYS_HASH_KEY


class DynamoDbKeyStore:
    """`client` is a boto3 DynamoDB client."""

    def __init__(self, client: Any, table: str) -> None:
        self._ddb = client
        self._table = table

    def create(self, record: ApiKeyRecord) -> None:
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item={
                    KEYS_HASH_KEY: {"S": record.key_id},
                    "record": {"S": json.dumps(record_to_json(record))},
                },
                ConditionExpression=f"attribute_not_exists({KEYS_HASH_KEY})",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise KeyExists(record.key_id) from None
            raise

    def get(self, key_id: str) -> ApiKeyRecord | None:
        # Consistent: a revocation written a moment ago must be seen by the next request.
        response = self._ddb.get_item(
            TableName=self._table, Key={KEYS_HASH_KEY: {"S": key_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        return record_from_json(json.loads(item["record"]["S"])) if item else None

    def list(self) -> list[ApiKeyRecord]:
        records: list[ApiKeyRecord] = []
        kwargs: dict[str, Any] = {"TableName": self._table}
        while True:
            page = self._ddb.scan(**kwargs)
            records.extend(record_from_json(json.loads(i["record"]["S"])) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return sorted(records, key=lambda r: r.created_at)
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def revoke(self, key_id: str, at: datetime) -> bool:
        for _ in range(8):
            current = self._ddb.get_item(
                TableName=self._table, Key={KEYS_HASH_KEY: {"S": key_id}}, ConsistentRead=True
            ).get("Item")
            if current is None:
                return False
            data = json.loads(current["record"]["S"])
            if data.get("revoked_at"):
                return True
            data["revoked_at"] = at.isoformat()
            try:
                self._ddb.put_item(
                    TableName=self._table,
                    Item={KEYS_HASH_KEY: {"S": key_id}, "record": {"S": json.dumps(data)}},
                    ConditionExpression="#r = :seen",
                    ExpressionAttributeNames={"#r": "record"},
                    ExpressionAttributeValues={":seen": current["record"]},
                )
                return True
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise
        raise RuntimeError(f"key {key_id} changed under every revoke attempt")


def create_table(client: Any, table: str) -> None:
    """The table as infra creates it; used by tests and the post-deploy suite's local runs."""
    client.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": KEYS_HASH_KEY, "AttributeType": "S"}],
        KeySchema=[{"AttributeName": KEYS_HASH_KEY, "KeyType": "HASH"}],
    )
