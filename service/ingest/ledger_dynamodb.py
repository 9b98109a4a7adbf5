"""The cloud ledger: one DynamoDB item per document, written with conditional writes.

Item layout (the table and its status index are created by `infra/components/ledger.py`):

- `document_id` (hash key), `status` (hash key of the status index), `updated_at`;
- `revision`: incremented by every write; claims are compare-and-set on it
  (`ConditionExpression: revision = :seen`, or `attribute_not_exists` for a new item),
  so the ordering and lease rules of `decide_claim` hold even when two Lambda
  instances race on one document;
- `lease_owner`: commits are conditional on it (`lease_owner = :me`);
- `record`: the rest of the `LedgerRecord` as JSON;
- `chunks`: the chunk ids packed as 20 bytes each (binary), so a document of
  10,000 chunks (the enforced per-document limit) takes 200 KB of the 400 KB item limit.
"""

from __future__ import annotations

import json
import re
from typing import Any

from botocore.exceptions import ClientError

from service.access import DEFAULT_WORKSPACE
from service.contract import (
    LEDGER_HASH_KEY,
    LEDGER_STATUS_ATTRIBUTE,
    LEDGER_STATUS_INDEX,
    LEDGER_WORKSPACE_ATTRIBUTE,
)
from service.ingest.ledger import (
    Claim,
    ClaimOutcome,
    LedgerRecord,
    Status,
    claimed_record,
    decide_claim,
    total_counts,
)

_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_CAS_ATTEMPTS = 8


def pack_chunk_ids(chunk_ids: tuple[str, ...]) -> dict[str, Any]:
    if all(_HEX40.match(c) for c in chunk_ids):
        return {"chunks": b"".join(bytes.fromhex(c) for c in chunk_ids)}
    return {"chunks_json": json.dumps(list(chunk_ids))}


def unpack_chunk_ids(item: dict[str, Any]) -> tuple[str, ...]:
    if "chunks_json" in item:
        return tuple(json.loads(item["chunks_json"]))
    raw = item.get("chunks", b"")
    raw = bytes(getattr(raw, "value", raw))  # boto3's resource layer wraps binary in `Binary`
    return tuple(raw[i : i + 20].hex() for i in range(0, len(raw), 20))


def _conditional_failed(error: ClientError) -> bool:
    return str(error.response.get("Error", {}).get("Code")) == "ConditionalCheckFailedException"


class DynamoDbLedger:
    """`client` is a boto3 DynamoDB *client* (the low-level API)."""

    def __init__(self, client: Any, table: str) -> None:
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        self._ddb = client
        self._table = table
        self._ser = TypeSerializer()
        self._de = TypeDeserializer()

    # -- item mapping ---------------------------------------------------------------------------

    def _to_item(self, record: LedgerRecord, revision: int) -> dict[str, Any]:
        body = record.model_dump(mode="json", exclude={"chunk_ids"})
        plain: dict[str, Any] = {
            LEDGER_HASH_KEY: record.document_id,
            LEDGER_STATUS_ATTRIBUTE: record.status.value,
            "updated_at": record.updated_at.isoformat(),
            "revision": revision,
            LEDGER_WORKSPACE_ATTRIBUTE: record.workspace,
            "record": json.dumps(body),
            **pack_chunk_ids(record.chunk_ids),
        }
        if record.lease_owner is not None:
            plain["lease_owner"] = record.lease_owner
        return {k: self._ser.serialize(v) for k, v in plain.items()}

    def _from_item(self, item: dict[str, Any]) -> tuple[LedgerRecord, int]:
        plain = {k: self._de.deserialize(v) for k, v in item.items()}
        body = json.loads(plain["record"])
        body["chunk_ids"] = unpack_chunk_ids(plain)
        return LedgerRecord.model_validate(body), int(plain["revision"])

    def _read(self, document_id: str) -> tuple[LedgerRecord | None, int]:
        response = self._ddb.get_item(
            TableName=self._table, Key={LEDGER_HASH_KEY: {"S": document_id}}, ConsistentRead=True
        )
        if "Item" not in response:
            return None, 0
        return self._from_item(response["Item"])

    def _cas(
        self, record: LedgerRecord, seen_revision: int, existed: bool, extra: str = "", **values: Any
    ) -> bool:
        condition = "revision = :seen" if existed else f"attribute_not_exists({LEDGER_HASH_KEY})"
        attr_values: dict[str, Any] = {":seen": {"N": str(seen_revision)}} if existed else {}
        if extra:
            condition = f"({condition}) AND {extra}"
            attr_values.update({k: self._ser.serialize(v) for k, v in values.items()})
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Item": self._to_item(record, seen_revision + 1),
            "ConditionExpression": condition,
        }
        if attr_values:
            kwargs["ExpressionAttributeValues"] = attr_values
        try:
            self._ddb.put_item(**kwargs)
        except ClientError as error:
            if _conditional_failed(error):
                return False
            raise
        return True

    # -- Ledger protocol ------------------------------------------------------------------------

    def get(self, document_id: str) -> LedgerRecord | None:
        return self._read(document_id)[0]

    def put(self, record: LedgerRecord) -> None:
        for _ in range(_CAS_ATTEMPTS):
            existing, revision = self._read(record.document_id)
            if self._cas(record, revision, existing is not None):
                return
        raise RuntimeError(f"ledger write for {record.document_id!r} kept conflicting")

    def claim(
        self,
        document_id: str,
        *,
        key: str | None,
        owner: str,
        at: float,
        lease_until: float,
        workspace: str = DEFAULT_WORKSPACE,
    ) -> Claim:
        for _ in range(_CAS_ATTEMPTS):
            existing, revision = self._read(document_id)
            outcome = decide_claim(existing, key, owner, at)
            if outcome is not ClaimOutcome.CLAIMED:
                assert existing is not None
                return Claim(outcome, existing, existing)
            record = claimed_record(existing, document_id, key, owner, lease_until, workspace=workspace)
            if self._cas(record, revision, existing is not None):
                return Claim(ClaimOutcome.CLAIMED, record, existing)
        raise RuntimeError(f"ledger claim for {document_id!r} kept conflicting")

    def commit(self, record: LedgerRecord, *, owner: str) -> bool:
        existing, revision = self._read(record.document_id)
        if existing is None or existing.lease_owner != owner:
            return False
        released = record.model_copy(update={"lease_owner": None, "lease_until": None})
        return self._cas(released, revision, True, "lease_owner = :owner", **{":owner": owner})

    def _pages(self, operation: str, **kwargs: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        paginator = self._ddb.get_paginator(operation)
        for page in paginator.paginate(TableName=self._table, **kwargs):
            items.extend(page.get("Items", []))
        return items

    def list(
        self, status: Status | None = None, limit: int = 1000, *, workspace: str | None = None
    ) -> list[LedgerRecord]:
        # Every page is read (the paginator follows LastEvaluatedKey), so the workspace filter
        # never cuts a page short the way `Limit` with a FilterExpression would.
        where = _workspace_filter(workspace)
        if status is None:
            items = self._pages("scan", **where)
        else:
            names = {"#s": LEDGER_STATUS_ATTRIBUTE, **where.get("ExpressionAttributeNames", {})}
            values = {":s": {"S": status.value}, **where.get("ExpressionAttributeValues", {})}
            items = self._pages(
                "query",
                IndexName=LEDGER_STATUS_INDEX,
                KeyConditionExpression="#s = :s",
                **{k: v for k, v in where.items() if k == "FilterExpression"},
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        records = [self._from_item(item)[0] for item in items]
        records.sort(key=lambda r: r.updated_at, reverse=True)
        return records[:limit]

    def counts(self, workspace: str | None = None) -> dict[str, int]:
        return total_counts(self.workspace_counts(), workspace)

    def workspace_counts(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for item in self._pages(
            "scan",
            ProjectionExpression="#s, #w",
            ExpressionAttributeNames={"#s": LEDGER_STATUS_ATTRIBUTE, "#w": LEDGER_WORKSPACE_ATTRIBUTE},
        ):
            status = item[LEDGER_STATUS_ATTRIBUTE]["S"]
            # Items written before issue 15 have no workspace: they are the default workspace's.
            workspace = item.get(LEDGER_WORKSPACE_ATTRIBUTE, {}).get("S", DEFAULT_WORKSPACE)
            per = counts.setdefault(workspace, {})
            per[status] = per.get(status, 0) + 1
        return counts

    def delete(self, document_id: str) -> None:
        self._ddb.delete_item(TableName=self._table, Key={LEDGER_HASH_KEY: {"S": document_id}})


def _workspace_filter(workspace: str | None) -> dict[str, Any]:
    if workspace is None:
        return {}
    expression = "#w = :w"
    if workspace == DEFAULT_WORKSPACE:
        expression = f"({expression} OR attribute_not_exists(#w))"
    return {
        "FilterExpression": expression,
        "ExpressionAttributeNames": {"#w": LEDGER_WORKSPACE_ATTRIBUTE},
        "ExpressionAttributeValues": {":w": {"S": workspace}},
    }


def create_table(client: Any, table: str) -> None:
    """The table as infra creates it; used by tests and by local tools against moto."""
    client.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": LEDGER_HASH_KEY, "AttributeType": "S"},
            {"AttributeName": LEDGER_STATUS_ATTRIBUTE, "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": LEDGER_HASH_KEY, "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": LEDGER_STATUS_INDEX,
                "KeySchema": [{"AttributeName": LEDGER_STATUS_ATTRIBUTE, "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
