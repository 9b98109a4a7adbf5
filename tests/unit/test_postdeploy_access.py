"""The post-deploy reader-key checks (issue 15): they pass on an API that confines a reader key,
fail on one that does not, and always revoke the temporary key."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from pipelines.keys_cli import local_pepper
from pipelines.postdeploy.access import StoreKeyIssuer, reader_key_checks
from pipelines.postdeploy.client import ApiClient
from service.access import AccessDenied, Role, authorize
from service.api.keys import ScopedKeys, file_pepper, local_pepper_path
from service.api.keys_sqlite import SqliteKeyStore, local_keys_path


class FakeApi:
    """Authenticates with the real scoped-key verifier over the same store the suite writes to;
    `confines=False` is an API that forgets to check the workspace and role."""

    def __init__(self, data_dir: Path, confines: bool = True) -> None:
        self.keys = ScopedKeys(
            SqliteKeyStore(local_keys_path(data_dir)), file_pepper(local_pepper_path(data_dir))
        )
        self.confines = confines

    def handle(self, request: httpx.Request) -> httpx.Response:
        principal = self.keys.verify(request.headers.get("x-api-key", ""))
        if principal is None:
            return httpx.Response(401, json={"detail": "missing or invalid API key"})
        if request.url.path == "/v1/search":
            workspace, needed = json.loads(request.content).get("workspace", "default"), Role.READER
        else:
            workspace, needed = request.url.params.get("workspace", "default"), Role.WRITER
        if self.confines:
            try:
                authorize(principal, workspace, needed)
            except AccessDenied:
                return httpx.Response(403, json={"detail": "forbidden"})
        return httpx.Response(200, json={"hits": []} if request.url.path == "/v1/search" else [])


def run_checks(tmp_path: Path, confines: bool) -> tuple[dict[str, bool], SqliteKeyStore]:
    store = SqliteKeyStore(local_keys_path(tmp_path))
    api = FakeApi(tmp_path, confines)
    client = ApiClient("http://platform.test", "bootstrap", transport=httpx.MockTransport(api.handle))
    checks = reader_key_checks(client, StoreKeyIssuer(store, lambda: local_pepper(tmp_path)))
    return {c.name: c.ok for c in checks}, store


def test_a_confining_api_passes_and_the_key_is_revoked(tmp_path: Path) -> None:
    results, store = run_checks(tmp_path, confines=True)
    assert results == {
        "reader key reads its workspace": True,
        "reader key cannot see another workspace": True,
        "reader key cannot use writer routes": True,
        "revoked key refused at once": True,
    }
    [record] = store.list()
    assert record.revoked_at is not None
    assert record.expires_at is not None


def test_an_api_that_ignores_workspaces_and_roles_fails(tmp_path: Path) -> None:
    results, store = run_checks(tmp_path, confines=False)
    assert results["reader key cannot see another workspace"] is False
    assert results["reader key cannot use writer routes"] is False
    assert all(r.revoked_at is not None for r in store.list())


def test_the_key_is_revoked_even_when_a_check_raises(tmp_path: Path) -> None:
    store = SqliteKeyStore(local_keys_path(tmp_path))

    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("network down")

    client = ApiClient("http://platform.test", "bootstrap", transport=httpx.MockTransport(broken))
    with pytest.raises(httpx.ConnectError):
        reader_key_checks(client, StoreKeyIssuer(store, lambda: local_pepper(tmp_path)))
    assert all(r.revoked_at is not None for r in store.list())
    assert len(store.list()) == 1


def test_a_stack_target_writes_its_key_to_the_keys_table_with_the_pepper_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import boto3
    from moto import mock_aws

    from pipelines.postdeploy import config
    from pipelines.postdeploy.cli import key_issuer
    from service.api.keys_dynamodb import DynamoDbKeyStore, create_table
    from service.contract import Output

    with mock_aws():
        # Given a stack's outputs naming its keys table and pepper secret
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_table(dynamodb, "rag-platform-staging-keys")
        pepper = "p" * 48
        arn = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
            Name="rag-platform-staging/api-key-pepper", SecretString=pepper
        )["ARN"]
        outputs: dict[str, str] = {
            Output.API_URL: "https://api.example",
            Output.DOCUMENT_BUCKET: "bucket",
            Output.KEYS_TABLE: "rag-platform-staging-keys",
            Output.API_KEY_PEPPER_SECRET_ARN: arn,
        }
        target = config.from_outputs(outputs, "stack staging", None, {"POSTDEPLOY_API_KEY": "bootstrap"})
        # When the suite makes its temporary reader key
        key_id, plaintext = key_issuer(target).create_reader("default")
        # Then the API's own verifier, with the stack's pepper, accepts it as a reader of default
        store = DynamoDbKeyStore(dynamodb, "rag-platform-staging-keys")
        principal = ScopedKeys(store, pepper.encode).verify(plaintext)
        assert principal is not None
        assert (principal.role, principal.workspaces) == (Role.READER, frozenset({"default"}))
        assert store.get(key_id) is not None
