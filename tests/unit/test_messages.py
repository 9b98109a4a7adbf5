"""Queue messages: every malformed shape is a permanent failure naming its field, and keys in
another bucket are never mapped onto this platform's document ids."""

from __future__ import annotations

import json
from typing import Any

import pytest

from service.ingest.errors import PermanentIngestError
from service.ingest.messages import parse_message

BUCKET = "rag-platform-test-documents"


def s3_event(bucket: str = BUCKET, key: str = "x.md", name: str = "ObjectCreated:Put") -> str:
    record = {
        "eventSource": "aws:s3",
        "eventName": name,
        "s3": {"bucket": {"name": bucket}, "object": {"key": key, "sequencer": "0A1"}},
    }
    return json.dumps({"Records": [record]})


def test_an_event_for_this_bucket_names_the_key_as_the_document() -> None:
    [action] = parse_message(s3_event(key="a/index.md"), bucket=BUCKET)
    assert action.document_id == "a/index.md"
    assert action.kind == "upsert"


@pytest.mark.parametrize(
    "body",
    [
        s3_event(bucket="no-such-bucket"),
        json.dumps({"action": "upsert", "s3_uri": "s3://no-such-bucket/x.md"}),
    ],
)
def test_a_message_for_another_bucket_is_refused_naming_it(body: str) -> None:
    # Given a message about s3://no-such-bucket/x.md, while this platform reads BUCKET
    # When it is parsed, then it is refused, naming both buckets, instead of becoming document x.md
    with pytest.raises(PermanentIngestError) as caught:
        parse_message(body, bucket=BUCKET)
    assert "s3://no-such-bucket/x.md" in caught.value.reason
    assert BUCKET in caught.value.reason


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"action": "upsert", "s3_uri": f"s3://{BUCKET}/x.md", "continuation": "abc"}, "continuation"),
        ({"action": "delete", "document_id": "x.md", "continuation": -1}, "continuation"),
        ({"action": "delete", "document_id": "x.md", "continuation": True}, "continuation"),
        ({"Records": "notalist"}, "Records must be a list"),
        ({"Records": [42]}, "Records[0] must be an object"),
        ({"Records": [{"eventSource": "aws:s3"}]}, "Records[0].s3"),
        ({"Records": [{"eventSource": "aws:s3", "s3": {"bucket": {}, "object": {}}}]}, "bucket.name"),
        (
            {"Records": [{"eventSource": "aws:s3", "s3": {"bucket": {"name": "b"}, "object": {"key": 7}}}]},
            "key",
        ),
        ({"action": "upsert", "document": {"document_id": "x"}}, "invalid inline document: title"),
        ({"action": "delete", "document_id": ""}, "unrecognised message"),
    ],
)
def test_a_malformed_message_names_what_is_wrong(payload: dict[str, Any], field: str) -> None:
    with pytest.raises(PermanentIngestError) as caught:
        parse_message(json.dumps(payload), bucket=BUCKET)
    assert field in caught.value.reason


@pytest.mark.parametrize("body", ["not json", "[1, 2]", '"text"', "[" * 100_000])
def test_a_body_that_is_not_a_json_object_is_permanent(body: str) -> None:
    with pytest.raises(PermanentIngestError):
        parse_message(body)


def test_records_from_other_event_sources_are_ignored() -> None:
    body = json.dumps({"Records": [{"eventSource": "aws:sns", "Sns": {}}]})
    assert parse_message(body, bucket=BUCKET) == []
