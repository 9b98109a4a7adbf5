"""The local cloud the artifact smoke runs the functions against, built from the stack's inventory.

- moto's server (S3, SQS, DynamoDB, Secrets Manager) on a free 127.0.0.1 port;
- osmem-server, an in-memory OpenSearch-compatible engine, for the search domain;
- `infra.tools.fake_bedrock` for the Bedrock runtime.

Every bucket, queue, table, secret and bucket notification is created from the resource
the program declares for the stack (`infra.tools.inventory`), under the name the program
gives it, so the values in the functions' environment point at resources that exist
here exactly as they would in the account. Only endpoints differ: the functions reach
these servers through botocore's per-service endpoint variables
(https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html).
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
from moto.server import ThreadedMotoServer
from osmem_server import OsmemServer

from infra.tools.artifact_search import security_shim
from infra.tools.fake_bedrock import FakeBedrock

# Credentials a Lambda execution role would hand the function; moto accepts any.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "ASIASMOKETESTACCESS",
    "AWS_SECRET_ACCESS_KEY": "smoke-secret-access-key",
    "AWS_SESSION_TOKEN": "smoke-session-token",
}
# botocore's service ids, spelled as its endpoint variables want them.
MOTO_SERVICES = ("S3", "SQS", "DYNAMODB", "SECRETS_MANAGER")

BUCKET = "aws:s3/bucket:Bucket"
BUCKET_V2 = "aws:s3/bucketV2:BucketV2"
VERSIONING = ("aws:s3/bucketVersioning:BucketVersioning", "aws:s3/bucketVersioningV2:BucketVersioningV2")
NOTIFICATION = "aws:s3/bucketNotification:BucketNotification"
QUEUE = "aws:sqs/queue:Queue"
TABLE = "aws:dynamodb/table:Table"
SECRET = "aws:secretsmanager/secret:Secret"  # noqa: S105 - a type token, not a secret


_PATCHED: list[bool] = []


def resources(inventory: dict[str, Any], *types: str) -> list[dict[str, Any]]:
    return [r for r in inventory["resources"] if r["type"] in types]


@dataclass
class LocalCloud:
    region: str
    moto_url: str
    search_url: str
    bedrock: FakeBedrock
    created: dict[str, list[str]] = field(default_factory=dict)
    inventory: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        make: Any = boto3.client
        return make(service, region_name=self.region, endpoint_url=self.moto_url, **_lower(FAKE_CREDENTIALS))

    def endpoint_variables(self) -> dict[str, str]:
        """What redirects the SDK, and only the SDK, to the local servers."""
        variables = {f"AWS_ENDPOINT_URL_{service}": self.moto_url for service in MOTO_SERVICES}
        variables["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] = self.bedrock.url
        return variables

    # -- provisioning from the inventory -------------------------------------------------

    def provision(self, inventory: dict[str, Any]) -> None:
        self.inventory = inventory
        s3, sqs, dynamodb, secrets = (self.client(s) for s in ("s3", "sqs", "dynamodb", "secretsmanager"))
        for bucket in resources(inventory, BUCKET, BUCKET_V2):
            name = bucket["inputs"]["bucket"]
            if self.region == "us-east-1":
                s3.create_bucket(Bucket=name)
            else:
                s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": self.region})
            self.created.setdefault("bucket", []).append(name)
        bucket_of = bucket_names(inventory)
        for versioning in resources(inventory, *VERSIONING):
            status = versioning["inputs"]["versioningConfiguration"]["status"]
            s3.put_bucket_versioning(
                Bucket=bucket_of[versioning["inputs"]["bucket"]], VersioningConfiguration={"Status": status}
            )
        for queue in resources(inventory, QUEUE):
            name = queue["inputs"]["name"]
            attributes = {"FifoQueue": "true"} if name.endswith(".fifo") else {}
            sqs.create_queue(QueueName=name, Attributes=attributes)
            self.created.setdefault("queue", []).append(name)
        for table in resources(inventory, TABLE):
            dynamodb.create_table(**table_definition(table["inputs"]))
            self.created.setdefault("table", []).append(table["inputs"]["name"])
        for secret in resources(inventory, SECRET):
            secrets.create_secret(Name=secret["inputs"]["name"])
            self.created.setdefault("secret", []).append(secret["inputs"]["name"])
        for notification in resources(inventory, NOTIFICATION):
            inputs = notification["inputs"]
            s3.put_bucket_notification_configuration(
                Bucket=bucket_of[inputs["bucket"]],
                NotificationConfiguration={
                    "QueueConfigurations": [_queue_rule(q) for q in inputs.get("queues", [])]
                },
            )

    def put_secret(self, secret_id: str, value: str) -> None:
        self.client("secretsmanager").put_secret_value(SecretId=secret_id, SecretString=value)

    def queue_url(self, queue_arn: str) -> str:
        name = queue_arn.rsplit(":", 1)[-1]
        url: str = self.client("sqs").get_queue_url(QueueName=name)["QueueUrl"]
        return url


def _lower(credentials: dict[str, str]) -> dict[str, str]:
    return {
        "aws_access_key_id": credentials["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": credentials["AWS_SECRET_ACCESS_KEY"],
        "aws_session_token": credentials["AWS_SESSION_TOKEN"],
    }


def table_definition(inputs: dict[str, Any]) -> dict[str, Any]:
    """CreateTable arguments from an `aws.dynamodb.Table`'s inputs (keys, attributes, GSIs)."""

    def keys(hash_key: str, range_key: str | None) -> list[dict[str, str]]:
        schema = [{"AttributeName": hash_key, "KeyType": "HASH"}]
        return schema + ([{"AttributeName": range_key, "KeyType": "RANGE"}] if range_key else [])

    definition: dict[str, Any] = {
        "TableName": inputs["name"],
        "KeySchema": keys(inputs["hashKey"], inputs.get("rangeKey")),
        "AttributeDefinitions": [
            {"AttributeName": a["name"], "AttributeType": a["type"]} for a in inputs["attributes"]
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }
    indexes = [
        {
            "IndexName": index["name"],
            "KeySchema": _index_keys(index) or keys(index["hashKey"], index.get("rangeKey")),
            "Projection": {"ProjectionType": index.get("projectionType", "ALL")},
        }
        for index in inputs.get("globalSecondaryIndexes", [])
    ]
    if indexes:
        definition["GlobalSecondaryIndexes"] = indexes
    return definition


def _index_keys(index: dict[str, Any]) -> list[dict[str, str]]:
    """pulumi-aws 7 spells a GSI's keys as `keySchemas`; earlier versions as hashKey/rangeKey."""
    return [
        {"AttributeName": k["attributeName"], "KeyType": k["keyType"]} for k in index.get("keySchemas", [])
    ]


def bucket_names(inventory: dict[str, Any]) -> dict[str, str]:
    """Every way another resource may refer to a bucket -> the bucket's name.

    In AWS a bucket's id is its name; under the offline mocks (`infra.tools.offline.PlatformMocks`)
    every resource's id is `<logical name>-id`, so a notification or versioning resource
    names its bucket that way in the inventory.
    """
    names: dict[str, str] = {}
    for bucket in resources(inventory, BUCKET, BUCKET_V2):
        name = bucket["inputs"]["bucket"]
        names[name] = name
        names[f"{bucket['name']}-id"] = name
    return names


def _queue_rule(rule: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {"QueueArn": rule["queueArn"], "Events": list(rule["events"])}
    filters = [
        {"Name": name, "Value": rule[key]}
        for name, key in (("prefix", "filterPrefix"), ("suffix", "filterSuffix"))
        if rule.get(key)
    ]
    if filters:
        config["Filter"] = {"Key": {"FilterRules": filters}}
    return config


@contextmanager
def local_cloud(region: str) -> Iterator[LocalCloud]:
    """The three servers on free ports, stopped on exit."""
    # Real S3 notifies deletes in versioned buckets (delete markers); moto needs the patch,
    # once per process: applied twice, it would notify every delete twice.
    if not _PATCHED:
        from pipelines.moto_server import send_delete_marker_events

        send_delete_marker_events()
        _PATCHED.append(True)
    # One line per request from werkzeug would bury the report.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with ExitStack() as stack:
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        moto.start()
        stack.callback(moto.stop)
        host, port = moto.get_host_and_port()
        # moto keeps its state per process, not per server: start every smoke from nothing.
        urllib.request.urlopen(
            urllib.request.Request(f"http://{host}:{port}/moto-api/reset", method="POST"), timeout=10
        ).close()
        search = OsmemServer.start(addr="127.0.0.1:0", japanese=False)
        stack.callback(search.close)
        # osmem has no security plugin: the shim answers its API and forwards the rest.
        shim = stack.enter_context(security_shim(search.url))
        bedrock = stack.enter_context(FakeBedrock())
        yield LocalCloud(
            region=region, moto_url=f"http://{host}:{port}", search_url=shim.url, bedrock=bedrock
        )


def dump(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)
