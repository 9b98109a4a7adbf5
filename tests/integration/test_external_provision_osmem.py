"""Issue 13: the provisioning function on an external OpenSearch cluster (osmem-server, port 0).

The stack runs it during `pulumi up` with `search.provider: external`: it reads the operator's
credentials from Secrets Manager (moto here), creates the first index behind the alias, maps no
roles, and fails the deploy naming the cause when the secret or the vector size is wrong.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from opensearchpy import OpenSearch
from osmem_server import OsmemServer

from service.contract import Env
from service.search.protocol import DimensionMismatchError
from service.settings import SettingsError, get_settings

ALIAS = "external-provision-test"
SECRET = "rag-platform-dev/search-credentials"
CONTEXT = type(
    "Context",
    (),
    {
        "function_name": "p",
        "memory_limit_in_mb": 512,
        "aws_request_id": "r",
        "invoked_function_arn": "arn:aws:lambda:eu-west-1:1:function:p",
    },
)()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    search = OsmemServer.start(addr="127.0.0.1:0", japanese=False)
    yield search.url
    search.close()


@pytest.fixture
def external(server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    # Given the provisioner's environment on an external cluster: engine, endpoint, the secret's
    # name, no role ARNs (infra/__main__.py sets none for search.provider: external)
    for name, value in {
        Env.SEARCH_BACKEND: "opensearch",
        Env.SEARCH_ENDPOINT: server,
        Env.SEARCH_INDEX_ALIAS: ALIAS,
        Env.EMBEDDING_DIMENSION: "8",
        Env.SEARCH_CREDENTIALS_SECRET_ID: SECRET,
        Env.AWS_REGION: "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="eu-west-1")
    get_settings.cache_clear()


def provision() -> dict[str, Any]:
    from service.handlers import provision as handler_module

    report: dict[str, Any] = handler_module.handler({"fingerprint": "f"}, CONTEXT)
    return report


def test_the_first_index_is_created_behind_the_alias_once_and_no_role_is_mapped(
    external: Any, server: str
) -> None:
    external.create_secret(Name=SECRET, SecretString="rag-writer:s3cret")
    # When `pulumi up` invokes the provisioner twice
    first, second = provision(), provision()
    # Then the alias points at one 8-dimension index, and no security role was applied
    assert first == second == {"engine": "opensearch", "alias": ALIAS, "dimension": 8, "roles": []}
    assert list(OpenSearch(hosts=[server]).indices.get_alias(name=ALIAS)) == [f"{ALIAS}-v1"]


def test_a_missing_secret_fails_the_deploy_naming_it(external: Any) -> None:
    with pytest.raises(SettingsError, match=f"SEARCH_CREDENTIALS_SECRET_ID={SECRET}: cannot read the secret"):
        provision()


def test_an_index_of_another_vector_size_fails_the_deploy(
    external: Any, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the index above (8 dimensions) and a stack now embedding 16
    external.create_secret(Name=SECRET, SecretString="rag-writer:s3cret")
    provision()
    monkeypatch.setenv(Env.EMBEDDING_DIMENSION, "16")
    get_settings.cache_clear()
    # Then the provisioner refuses, so the deploy fails before a function writes a wrong vector
    with pytest.raises(DimensionMismatchError, match="holds 8-dimensional vectors"):
        provision()
