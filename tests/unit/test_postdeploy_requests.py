"""The post-deploy suite's declared AWS requests are exactly the calls it makes (issue 15 item 5).

`pipelines.postdeploy.requests.SUITE_REQUESTS` is what the offline proof evaluates against each
stack's deploy role. Here both suites run as the deploy job runs them (`--from-stack`, the reader
key checks, the seeded gate) against moto, every call of their AWS clients is recorded, and
the recording must match the list: a new call in the suite that the list (and so the proof)
does not cover turns this red, and so does a listed request no suite makes any more.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from moto import mock_aws

from pipelines.postdeploy import cli, config
from pipelines.postdeploy.client import ApiClient
from pipelines.postdeploy.requests import SUITE_REQUESTS
from pipelines.postdeploy.store import S3Store, s3_client
from service.access import AccessDenied, Role, authorize
from service.api.keys import ScopedKeys
from service.api.keys_dynamodb import DynamoDbKeyStore, create_table
from service.contract import API_KEY_HEADER, PROJECT, Output

REGION = "us-east-1"
STACK = "staging"
BOOTSTRAP_KEY = "bootstrap-key"
PEPPER = "p" * 48
# IAM actions whose name is not the API operation's
# (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html).
IAM_ACTION = {"s3:ListObjectsV2": "s3:ListBucket", "s3:HeadObject": "s3:GetObject"}


class Recorder:
    """Every call a client of the default boto3 session makes: (IAM action, the value it names)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        prefix = model.service_model.metadata.get("signingName") or model.service_model.endpoint_prefix
        action = f"{prefix}:{model.name}"
        self.calls.append((IAM_ACTION.get(action, action), dict(params)))


class FakeStack:
    """The deployed API: the stack's API key, scoped keys verified from the keys table with the
    pepper, documents found by their words in the bucket. Its own AWS clients are of a separate
    session, so only the suite's calls are recorded."""

    def __init__(self, outputs: dict[str, str]) -> None:
        session = boto3.session.Session(region_name=REGION)
        self.s3 = session.client("s3")
        self.bucket = outputs[Output.DOCUMENT_BUCKET]
        store = DynamoDbKeyStore(session.client("dynamodb"), outputs[Output.KEYS_TABLE])
        self.keys = ScopedKeys(store, PEPPER.encode)

    def _documents(self, words: str | None) -> list[str]:
        wanted = set((words or "").lower().split())
        found = []
        for item in self.s3.list_objects_v2(Bucket=self.bucket).get("Contents", []):
            text = self.s3.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read().decode().lower()
            if words is None or wanted & set(text.split()):
                found.append(item["Key"])
        return found

    def handle(self, request: httpx.Request) -> httpx.Response:
        path, key = request.url.path, request.headers.get(API_KEY_HEADER, "")
        if path == "/health":
            return httpx.Response(200, json={"status": "ok"})
        body = json.loads(request.content) if request.content else {}
        if key != BOOTSTRAP_KEY:
            principal = self.keys.verify(key)
            if principal is None:
                return httpx.Response(401, json={"detail": "unauthorized"})
            workspace = body.get("workspace") or request.url.params.get("workspace", "default")
            try:
                authorize(principal, workspace, Role.READER if path == "/v1/search" else Role.WRITER)
            except AccessDenied:
                return httpx.Response(403, json={"detail": "forbidden"})
        if path == "/v1/query":
            cited = [{"number": 1, "document_id": d} for d in self._documents(body["question"].rstrip("?"))]
            return httpx.Response(200, json={"answer": "...", "citations": cited})
        if path == "/v1/search":
            return httpx.Response(200, json={"hits": [{"document_id": d} for d in self._documents(None)]})
        statuses = [{"document_id": d, "status": "indexed"} for d in self._documents(None)]
        return httpx.Response(200, json=statuses)


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[dict[str, str], Recorder]]:
    for variable in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "POSTDEPLOY_API_KEY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        session = boto3.session.Session(region_name=REGION)
        bucket = f"{PROJECT}-{STACK}-documents-123456789012"
        session.client("s3").create_bucket(Bucket=bucket)
        create_table(session.client("dynamodb"), f"{PROJECT}-{STACK}-keys")
        secrets = session.client("secretsmanager")
        outputs: dict[str, str] = {
            Output.API_URL: "https://api.stack.test",
            Output.DOCUMENT_BUCKET: bucket,
            Output.KEYS_TABLE: f"{PROJECT}-{STACK}-keys",
            Output.API_KEYS_SECRET_ARN: secrets.create_secret(
                Name=f"{PROJECT}-{STACK}/api-keys", SecretString=json.dumps([BOOTSTRAP_KEY])
            )["ARN"],
            Output.API_KEY_PEPPER_SECRET_ARN: secrets.create_secret(
                Name=f"{PROJECT}-{STACK}/api-key-pepper", SecretString=PEPPER
            )["ARN"],
        }
        # The suite's clients come from the default session: record what they call.
        recorder = Recorder()
        default = boto3.session.Session(region_name=REGION)
        default.events.register("provide-client-params.*.*", recorder)
        monkeypatch.setattr(boto3, "DEFAULT_SESSION", default)
        monkeypatch.setattr(config, "stack_outputs", lambda name: dict(outputs))
        yield outputs, recorder


def run_suite(argv: list[str], outputs: dict[str, str]) -> int:
    api = FakeStack(outputs)

    def connect(target: config.Target) -> tuple[ApiClient, S3Store]:
        transport = httpx.MockTransport(api.handle)
        return (
            ApiClient(target.api_url, target.api_key, transport=transport),
            S3Store(s3_client(target), target.document_bucket),
        )

    fast = ["--timeout", "2", "--poll-interval", "0.01"]
    return cli.main([*argv, "--from-stack", STACK, *fast], environ={"AWS_REGION": REGION}, connector=connect)


def recorded(recorder: Recorder, outputs: dict[str, str]) -> set[tuple[str, str]]:
    """(action, the stack output naming the resource) of every recorded call."""
    by_value = {value: key for key, value in outputs.items()}
    out = set()
    for action, params in recorder.calls:
        named = params.get("Bucket") or params.get("TableName") or params.get("SecretId")
        assert named in by_value, f"{action} on {named!r}, which no stack output names"
        out.add((action, by_value[named]))
    return out


def small_golden(tmp_path: Path) -> Path:
    path = tmp_path / "golden.json"
    path.write_text(
        json.dumps(
            {
                "name": "tiny",
                "top_k": 3,
                "margin": 0.1,
                "modes": ["hybrid"],
                "baseline": {"hybrid": {"hit_rate": 0.5, "recall_at_k": 0.5, "mrr": 0.5}},
                "seed": ["README.md"],
                "questions": [{"question": "What is this?", "relevant": ["README.md"]}],
                "corpus": {"documents": 4, "questions": 2},
            }
        )
    )
    return path


def test_the_suites_make_exactly_the_declared_requests(
    stack: tuple[dict[str, str], Recorder], tmp_path: Path
) -> None:
    outputs, recorder = stack
    # Given a stack whose API confines scoped keys
    # When the smoke suite with the reader-key checks and the seeded gate run as deploy.yml runs them
    assert run_suite(["smoke", "--reader-key-checks"], outputs) == 0
    assert run_suite(["gate", "--seed", "--golden", str(small_golden(tmp_path))], outputs) == 0
    # Then every call they made is a declared request, and every declared request was made
    declared = {(r.action, r.output) for r in SUITE_REQUESTS}
    made = recorded(recorder, outputs)
    assert made - declared == set(), "calls missing from pipelines/postdeploy/requests.py"
    assert declared - made == set(), "declared requests no suite makes any more"


def test_a_call_the_list_does_not_declare_is_caught(
    stack: tuple[dict[str, str], Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs, recorder = stack
    # Given a key store that also lists the table (a Scan the deploy role's proof never saw)
    original = DynamoDbKeyStore.create

    def create_and_list(self: DynamoDbKeyStore, record: Any) -> None:
        original(self, record)
        self.list()

    monkeypatch.setattr(DynamoDbKeyStore, "create", create_and_list)
    # When the smoke suite runs its reader-key checks
    run_suite(["smoke", "--reader-key-checks"], outputs)
    # Then the recording holds a request the declared list lacks
    declared = {(r.action, r.output) for r in SUITE_REQUESTS}
    assert recorded(recorder, outputs) - declared == {("dynamodb:Scan", Output.KEYS_TABLE)}
