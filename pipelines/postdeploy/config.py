"""Where the suite finds its target: stack outputs, the local platform file, or env vars.

Stack-output keys come from `service.contract.Output` and env-var names from
`service.contract.Env`; none is spelled here. Env vars override the source file or
stack value by value, so CI can inject e.g. an API key without editing anything.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipelines.platform_file import field_name
from service.contract import Env, Output

# Keys of `.data/platform.json`, written by `ragctl dev` (the local platform), checked
# against its one definition in `pipelines.platform_file`.
LOCAL_API_URL = field_name("api_url")
LOCAL_API_KEY = field_name("api_key")
LOCAL_ENDPOINT = field_name("aws_endpoint_url")
LOCAL_BUCKET = field_name("document_bucket")
LOCAL_INGEST_QUEUE = field_name("ingest_queue_url")
LOCAL_DLQ = field_name("dead_letter_queue_url")
LOCAL_REGION = field_name("region")
LOCAL_DATA_DIR = field_name("data_dir")

DEFAULT_REGION = "us-east-1"


class ConfigError(RuntimeError):
    """The target is incomplete; the message names what is missing and where it was looked for."""


@dataclass(frozen=True)
class Target:
    """One deployed (or local) platform the suite checks."""

    api_url: str
    api_key: str
    document_bucket: str
    source: str
    ingest_queue_url: str = ""
    aws_endpoint_url: str | None = None
    region: str = DEFAULT_REGION
    artifact_sha256: str | None = None
    # Issue 15: where the reader-key checks create their temporary key (one of the two).
    keys_table: str = ""
    key_pepper_secret_arn: str = ""
    data_dir: str = ""

    @property
    def is_local(self) -> bool:
        return self.aws_endpoint_url is not None


# Reads a secret's string value by ARN; injected so tests need no AWS.
SecretReader = Callable[[str], str]
# Runs a command and returns its stdout; injected so tests need no Pulumi CLI.
CommandRunner = Callable[[list[str]], str]


def _run(cmd: list[str]) -> str:
    # The command is fixed by `stack_outputs`; only the stack name varies and is passed as one argv item.
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def _require(values: Mapping[str, Any], key: str, source: str) -> str:
    value = values.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{source} has no '{key}'")
    return value


def from_local(path: Path) -> Target:
    """The platform `ragctl dev` started, described by `.data/platform.json`."""
    if not path.is_file():
        raise ConfigError(f"{path} not found: start the local platform with `make dev` first")
    data = json.loads(path.read_text(encoding="utf-8"))
    source = str(path)
    return Target(
        api_url=_require(data, LOCAL_API_URL, source),
        api_key=_require(data, LOCAL_API_KEY, source),
        document_bucket=_require(data, LOCAL_BUCKET, source),
        ingest_queue_url=str(data.get(LOCAL_INGEST_QUEUE, "")),
        aws_endpoint_url=_require(data, LOCAL_ENDPOINT, source),
        region=str(data.get(LOCAL_REGION) or DEFAULT_REGION),
        data_dir=str(data.get(LOCAL_DATA_DIR) or ""),
        source=source,
    )


def first_api_key(secret_string: str) -> str:
    """The first key of an API-keys secret: a JSON list, a JSON object, or comma-separated text."""
    try:
        parsed: Any = json.loads(secret_string)
    except json.JSONDecodeError:
        parsed = secret_string
    if isinstance(parsed, dict):
        parsed = parsed.get("keys", list(parsed.values()))
    if isinstance(parsed, str):
        parsed = parsed.split(",")
    keys = [k.strip() for k in parsed if isinstance(k, str) and k.strip()] if isinstance(parsed, list) else []
    if not keys:
        raise ConfigError("the API-keys secret holds no key")
    return keys[0]


def stack_outputs(stack: str, runner: CommandRunner = _run) -> dict[str, Any]:
    """`pulumi stack output --json --show-secrets` of `stack` (the API key's secret ARN is a secret)."""
    out = runner(["pulumi", "stack", "output", "--json", "--show-secrets", "--stack", stack])
    data = json.loads(out)
    if not isinstance(data, dict):
        raise ConfigError(f"pulumi stack output of {stack!r} is not a JSON object")
    return data


def from_outputs(
    outputs: Mapping[str, Any], source: str, secret_reader: SecretReader | None, environ: Mapping[str, str]
) -> Target:
    """A cloud stack described by its outputs; the API key is read from its secret unless env gives one."""
    api_key = environ.get(Env.POSTDEPLOY_API_KEY, "")
    if not api_key:
        if secret_reader is None:
            raise ConfigError(f"set {Env.POSTDEPLOY_API_KEY} or allow reading {Output.API_KEYS_SECRET_ARN}")
        api_key = first_api_key(secret_reader(_require(outputs, Output.API_KEYS_SECRET_ARN, source)))
    sha = outputs.get(Output.ARTIFACT_SHA256)
    return Target(
        api_url=_require(outputs, Output.API_URL, source),
        api_key=api_key,
        document_bucket=_require(outputs, Output.DOCUMENT_BUCKET, source),
        ingest_queue_url=str(outputs.get(Output.INGEST_QUEUE_URL, "")),
        region=environ.get(Env.AWS_REGION) or DEFAULT_REGION,
        artifact_sha256=sha if isinstance(sha, str) else None,
        keys_table=str(outputs.get(Output.KEYS_TABLE) or ""),
        key_pepper_secret_arn=str(outputs.get(Output.API_KEY_PEPPER_SECRET_ARN) or ""),
        source=source,
    )


def from_env(environ: Mapping[str, str]) -> Target:
    """A target given entirely by environment variables."""
    source = "environment"
    return Target(
        api_url=_require(environ, Env.POSTDEPLOY_API_URL, source),
        api_key=_require(environ, Env.POSTDEPLOY_API_KEY, source),
        document_bucket=_require(environ, Env.DOCUMENT_BUCKET, source),
        ingest_queue_url=environ.get(Env.INGEST_QUEUE_URL, ""),
        aws_endpoint_url=environ.get(Env.AWS_ENDPOINT_URL) or None,
        region=environ.get(Env.AWS_REGION) or DEFAULT_REGION,
        source=source,
    )


def with_env_overrides(target: Target, environ: Mapping[str, str]) -> Target:
    """Env vars win value by value over the file or stack."""
    overrides = {
        "api_url": environ.get(Env.POSTDEPLOY_API_URL),
        "api_key": environ.get(Env.POSTDEPLOY_API_KEY),
        "document_bucket": environ.get(Env.DOCUMENT_BUCKET),
        "ingest_queue_url": environ.get(Env.INGEST_QUEUE_URL),
        "aws_endpoint_url": environ.get(Env.AWS_ENDPOINT_URL),
        "region": environ.get(Env.AWS_REGION),
    }
    return replace(target, **{k: v for k, v in overrides.items() if v})
