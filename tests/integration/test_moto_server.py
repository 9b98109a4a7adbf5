from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pipelines.local_aws import QueueSettings, create_resources
from pipelines.moto_server import send_delete_marker_events
from service.contract import ResourceNames


@pytest.fixture
def aws() -> Iterator[tuple[Any, Any]]:
    send_delete_marker_events()
    with mock_aws():
        yield boto3.client("s3", region_name="us-east-1"), boto3.client("sqs", region_name="us-east-1")


def event_names(sqs: Any, queue_url: str) -> list[str]:
    names = []
    for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        names += [r["eventName"] for r in json.loads(message["Body"]).get("Records", [])]
    return names


def test_deleting_from_the_versioned_bucket_notifies_the_queue_like_s3(aws: tuple[Any, Any]) -> None:
    # Given the local resources, created as `ragctl dev` creates them (versioned bucket)
    s3, sqs = aws
    resources = create_resources(s3, sqs, ResourceNames.for_stack("local"), QueueSettings())
    # When an object is uploaded and then deleted without a version id
    s3.put_object(Bucket=resources.document_bucket, Key="notes.md", Body=b"# Notes")
    s3.delete_object(Bucket=resources.document_bucket, Key="notes.md")
    # Then the queue receives the created event and the delete-marker event real S3 sends
    assert event_names(sqs, resources.ingest_queue_url) == [
        "ObjectCreated:Put",
        "ObjectRemoved:DeleteMarkerCreated",
    ]


def test_the_queue_has_a_dead_letter_queue_after_max_receive_count(aws: tuple[Any, Any]) -> None:
    s3, sqs = aws
    resources = create_resources(
        s3, sqs, ResourceNames.for_stack("local"), QueueSettings(max_receive_count=3)
    )
    attributes = sqs.get_queue_attributes(QueueUrl=resources.ingest_queue_url, AttributeNames=["All"])[
        "Attributes"
    ]
    policy = json.loads(attributes["RedrivePolicy"])
    assert policy["maxReceiveCount"] == 3
    assert policy["deadLetterTargetArn"].endswith(ResourceNames.for_stack("local").dead_letter_queue)
