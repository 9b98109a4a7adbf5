"""Where the post-deploy suite finds its target: stack outputs, the local platform file, env vars."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.postdeploy import config
from service.contract import Env, Output

OUTPUTS = {
    Output.API_URL.value: "https://abc.execute-api.eu-west-1.amazonaws.com",
    Output.DOCUMENT_BUCKET.value: "rag-platform-staging-documents-1234",
    Output.INGEST_QUEUE_URL.value: "https://sqs.eu-west-1.amazonaws.com/1/rag-platform-staging-ingest",
    Output.API_KEYS_SECRET_ARN.value: "arn:aws:secretsmanager:eu-west-1:1:secret:keys",
    Output.ARTIFACT_SHA256.value: "f" * 64,
}


def test_stack_outputs_become_a_target_with_the_key_read_from_its_secret() -> None:
    # Given a stack's outputs and a Secrets Manager that holds a JSON list of keys
    read: list[str] = []

    def reader(arn: str) -> str:
        read.append(arn)
        return json.dumps(["key-one", "key-two"])

    # When the target is resolved
    target = config.from_outputs(OUTPUTS, "stack staging", reader, {Env.AWS_REGION.value: "eu-west-1"})

    # Then every field comes from the contract's output keys, the key from the secret
    assert read == [OUTPUTS[Output.API_KEYS_SECRET_ARN.value]]
    assert target.api_url == OUTPUTS[Output.API_URL.value]
    assert target.api_key == "key-one"
    assert target.document_bucket == OUTPUTS[Output.DOCUMENT_BUCKET.value]
    assert target.artifact_sha256 == "f" * 64
    assert target.region == "eu-west-1"
    assert not target.is_local


def test_an_env_api_key_spares_reading_the_secret() -> None:
    # Given the key in the environment / Then no secret is read
    def reader(arn: str) -> str:
        raise AssertionError("secret read although the environment gave the key")

    target = config.from_outputs(OUTPUTS, "stack prod", reader, {Env.POSTDEPLOY_API_KEY.value: "from-env"})
    assert target.api_key == "from-env"


def test_a_missing_output_is_named() -> None:
    # Given outputs without the API URL / Then the error names the key and the stack
    outputs = {k: v for k, v in OUTPUTS.items() if k != Output.API_URL.value}
    with pytest.raises(config.ConfigError, match=r"stack prod has no 'apiUrl'"):
        config.from_outputs(outputs, "stack prod", lambda _: "k", {})


@pytest.mark.parametrize(
    ("secret", "expected"),
    [('["a", "b"]', "a"), ('{"keys": ["c"]}', "c"), ('{"primary": "d"}', "d"), ("e, f", "e"), ("g", "g")],
)
def test_the_first_api_key_is_taken_from_any_usual_secret_shape(secret: str, expected: str) -> None:
    assert config.first_api_key(secret) == expected


def test_an_empty_key_secret_is_an_error() -> None:
    with pytest.raises(config.ConfigError, match="no key"):
        config.first_api_key("[]")


def test_stack_outputs_are_read_with_secrets_shown() -> None:
    # Given a Pulumi CLI stand-in
    calls: list[list[str]] = []

    def runner(cmd: list[str]) -> str:
        calls.append(cmd)
        return json.dumps(OUTPUTS)

    # When the outputs of a stack are read / Then secrets are shown (the key ARN is one) and the stack named
    assert config.stack_outputs("staging", runner) == OUTPUTS
    assert calls == [["pulumi", "stack", "output", "--json", "--show-secrets", "--stack", "staging"]]


def test_the_local_platform_file_gives_a_local_target(tmp_path: Path) -> None:
    # Given the file `ragctl dev` writes
    path = tmp_path / "platform.json"
    path.write_text(
        json.dumps(
            {
                "api_url": "http://127.0.0.1:8000",
                "api_key": "local-key",
                "aws_endpoint_url": "http://127.0.0.1:5000",
                "document_bucket": "rag-platform-local-documents",
                "ingest_queue_url": "http://127.0.0.1:5000/123/rag-platform-local-ingest",
                "dead_letter_queue_url": "http://127.0.0.1:5000/123/rag-platform-local-ingest-dlq",
            }
        )
    )

    # When read, with one env override
    target = config.with_env_overrides(config.from_local(path), {Env.POSTDEPLOY_API_KEY.value: "override"})

    # Then it points at the local endpoints and the env var won
    assert target.is_local
    assert target.aws_endpoint_url == "http://127.0.0.1:5000"
    assert target.document_bucket == "rag-platform-local-documents"
    assert target.api_key == "override"


def test_a_missing_platform_file_says_to_start_the_platform(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match="make dev"):
        config.from_local(tmp_path / "absent.json")


def test_env_alone_needs_url_key_and_bucket() -> None:
    # Given only the URL and the key / Then the missing bucket variable is named
    env = {Env.POSTDEPLOY_API_URL.value: "http://x", Env.POSTDEPLOY_API_KEY.value: "k"}
    with pytest.raises(config.ConfigError, match="DOCUMENT_BUCKET"):
        config.from_env(env)
    # And with it, the target is complete
    target = config.from_env({**env, Env.DOCUMENT_BUCKET.value: "b"})
    assert (target.api_url, target.api_key, target.document_bucket) == ("http://x", "k", "b")
