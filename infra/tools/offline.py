"""Run the Pulumi program in-process under mocks: no cloud, no CLI, no credentials.

This is Pulumi's own unit-test method (`pulumi.runtime.set_mocks`); the tests and the
review tools (inventory, diff, security scan, cost) all go through `run_stack`. Mocks
and config are set before the program module is executed, and each run happens in a
fresh `contextvars.Context`, so staging and prod can run in one process.
"""

from __future__ import annotations

import contextvars
import fnmatch
import json
import runpy
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.sync_await import _sync_await

from infra.stacks import EPHEMERAL_SOURCE, EPHEMERAL_STACKS
from service.contract import PROJECT

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT_ID = "123456789012"
MASK = "[secret]"
# The artifact is not part of the infrastructure under review; a fixed stub keeps the
# inventory identical whether or not `make package` has run.
STUB_ARTIFACT = ROOT / "build" / "offline" / "artifact-stub.zip"
_SECRET_SIG = rpc._special_sig_key
_SECRET_VALUE = rpc._special_secret_sig


@dataclass
class ResourceRecord:
    type: str
    name: str
    urn: str
    parent: str | None
    custom: bool
    inputs: dict[str, Any]
    state: dict[str, Any] = field(default_factory=dict)
    # URNs this resource explicitly waits for (`depends_on`).
    dependencies: list[str] = field(default_factory=list)


@dataclass
class StackRun:
    stack: str
    resources: list[ResourceRecord]
    outputs: dict[str, Any]
    secret_outputs: set[str]

    def of_type(self, type_token: str) -> list[ResourceRecord]:
        return [r for r in self.resources if r.type == type_token]

    def one(self, type_token: str, name: str | None = None) -> ResourceRecord:
        found = [r for r in self.of_type(type_token) if name is None or r.name == name]
        if len(found) != 1:
            raise LookupError(f"expected one {type_token} {name or ''}, found {[r.name for r in found]}")
        return found[0]

    def by_urn(self, urn: str) -> ResourceRecord:
        return next(r for r in self.resources if r.urn == urn)


# Stack files standing in for `Pulumi.<stack>.yaml` while `overlaid` is active (docs/examples).
_STAND_INS: dict[str, Path] = {}


def stack_file(stack: str) -> Path:
    """The file `stack`'s config is read from. A per-PR stack (`pr-<number>`) has no file of its
    own: ephemeral.yml creates it with `--copy-config-from` the source stack, so it is read from
    that stack's file, exactly as the Pulumi CLI would (`make rehearse STACK=pr-1`)."""
    if stack in _STAND_INS:
        return _STAND_INS[stack]
    path = ROOT / f"Pulumi.{stack}.yaml"
    if not path.exists() and fnmatch.fnmatchcase(stack, EPHEMERAL_STACKS):
        return ROOT / f"Pulumi.{EPHEMERAL_SOURCE}.yaml"
    return path


@contextmanager
def overlaid(stack: str, overlay: Path, base: str = "staging") -> Iterator[Path]:
    """`stack` read from `base`'s stack file with `overlay`'s `config:` keys replacing its own.

    How the provider examples under docs/examples/ are reviewed without a committed stack file
    (every root stack file is deployed by CI): `make inventory STACK=dev OVERLAY=<snippet>`,
    `make rehearse STACK=dev OVERLAY=<snippet>`. Keys are replaced whole, as in a stack file.
    """
    document = yaml.safe_load(stack_file(base).read_text()) or {}
    document["config"] = {
        **(document.get("config") or {}),
        **(yaml.safe_load(overlay.read_text()) or {})["config"],
    }
    with tempfile.TemporaryDirectory(prefix="stack-overlay-") as folder:
        path = Path(folder) / f"Pulumi.{stack}.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        previous = _STAND_INS.get(stack)
        _STAND_INS[stack] = path
        try:
            yield path
        finally:
            if previous is None:
                _STAND_INS.pop(stack, None)
            else:
                _STAND_INS[stack] = previous


def ensure_stub_artifact() -> Path:
    if not STUB_ARTIFACT.exists():
        STUB_ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(STUB_ARTIFACT, "w") as archive:
            archive.writestr(zipfile.ZipInfo("service/__init__.py", (1980, 1, 1, 0, 0, 0)), "")
    return STUB_ARTIFACT


def committed_config(stack: str) -> dict[str, Any]:
    """`config:` of the committed `Pulumi.<stack>.yaml`, exactly as the Pulumi CLI reads it."""
    document = yaml.safe_load(stack_file(stack).read_text()) or {}
    return dict(document.get("config") or {})


def config_map(stack: str, overrides: Mapping[str, Any] | None = None) -> tuple[dict[str, str], list[str]]:
    """The config map the Pulumi engine would hand the program for `stack`.

    Only what the stack file holds: no key is added, so a key the file lacks fails here
    as it would on `pulumi up`. Two substitutions, neither hiding a missing key:
    `artifactPath` points at a stub zip (the code is not under review here), and an
    encrypted (`secure:`) value, which cannot be decrypted offline, arrives masked but
    still flagged as secret.
    """
    raw = committed_config(stack)
    raw[f"{PROJECT}:artifactPath"] = str(ensure_stub_artifact().relative_to(ROOT))
    raw.update(overrides or {})
    secret_keys = sorted({k for k, v in raw.items() if isinstance(v, dict) and set(v) == {"secure"}})
    values: dict[str, str] = {}
    for key, given in raw.items():
        value = MASK if key in secret_keys else given
        values[key] = value if isinstance(value, str) else json.dumps(value)
    return values, secret_keys


class PlatformMocks(pulumi.runtime.Mocks):
    """Plausible provider outputs: ids, ARNs, URLs and endpoints derived from the inputs."""

    def __init__(self, region: str) -> None:
        self.region = region

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        state = dict(args.inputs)
        physical = str(state.get("name") or state.get("bucket") or state.get("domainName") or args.name)
        service = args.typ.split(":")[1].split("/")[0]
        state.setdefault("arn", f"arn:aws:{service}:{self.region}:{ACCOUNT_ID}:{physical}")
        state.setdefault("name", physical)
        extra = {
            "aws:sqs/queue:Queue": {
                "url": f"https://sqs.{self.region}.amazonaws.com/{ACCOUNT_ID}/{physical}",
                "arn": f"arn:aws:sqs:{self.region}:{ACCOUNT_ID}:{physical}",
            },
            "aws:s3/bucket:Bucket": {"arn": f"arn:aws:s3:::{physical}"},
            "aws:opensearch/domain:Domain": {
                "endpoint": f"vpc-{physical}-mock.{self.region}.es.amazonaws.com",
                "arn": f"arn:aws:es:{self.region}:{ACCOUNT_ID}:domain/{physical}",
            },
            "aws:apigatewayv2/api:Api": {
                "apiEndpoint": f"https://{args.name}.execute-api.{self.region}.amazonaws.com",
                "executionArn": f"arn:aws:execute-api:{self.region}:{ACCOUNT_ID}:{args.name}",
            },
            "aws:lambda/function:Function": {
                "invokeArn": f"arn:aws:apigateway:{self.region}:lambda:path/functions/"
                f"{state['arn']}/invocations"
            },
            "aws:cloudfront/distribution:Distribution": {"domainName": f"{args.name}.cloudfront.net"},
            "aws:ec2/vpcEndpoint:VpcEndpoint": {"prefixListId": f"pl-{args.name}"},
            "aws:kms/key:Key": {"keyId": f"{args.name}-key-id"},
            "aws:iam/role:Role": {"arn": f"arn:aws:iam::{ACCOUNT_ID}:role/{physical}"},
            # What random_password returns: its `result`, which the engine marks secret.
            "random:index/randomPassword:RandomPassword": {"result": f"mock-{args.name}-" + "x" * 24},
        }
        state.update(extra.get(args.typ, {}))
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        invoke = args.token
        if invoke == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT_ID,
                "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/mock",
                "userId": "mock",
            }, []
        if invoke == "aws:index/getAvailabilityZones:getAvailabilityZones":
            names = [f"{self.region}{z}" for z in "abc"]
            return {"names": names, "zoneIds": [f"use1-az{i}" for i in range(3)], "id": self.region}, []
        raise NotImplementedError(f"no mock for invoke {invoke}")


def _mask_secrets(value: Any) -> Any:
    """Secrets masked; protobuf's doubles turned back into ints where they are whole numbers."""
    if isinstance(value, dict):
        if value.get(_SECRET_SIG) == _SECRET_VALUE:
            return MASK
        return {k: _mask_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_secrets(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """Keeps what the mocks alone do not: parent URNs, and inputs with secrets masked."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.records: list[ResourceRecord] = []

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type != "pulumi:pulumi:Stack":
            from google.protobuf import json_format  # type: ignore[import-untyped]

            raw = json_format.MessageToDict(request.object)
            inputs = _mask_secrets(raw)
            registered = self.resources.get(response.urn)
            state = {**registered.state, "id": registered.id} if registered else {}
            self.records.append(
                ResourceRecord(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    parent=request.parent or None,
                    custom=bool(request.custom),
                    inputs=inputs,
                    state=state,
                    dependencies=list(request.dependencies),
                )
            )
        return response


async def _resolve_outputs(outputs: Mapping[str, Any]) -> tuple[dict[str, Any], set[str]]:
    values: dict[str, Any] = {}
    secrets: set[str] = set()
    for key, value in outputs.items():
        output = pulumi.Output.from_input(value)
        values[key] = await output.future()
        if await output.is_secret():
            secrets.add(key)
    return values, secrets


def _run(stack: str, overrides: Mapping[str, Any] | None) -> StackRun:
    config, secret_keys = config_map(stack, overrides)
    region = config.get("aws:region", "us-east-1")
    monitor = RecordingMonitor(PlatformMocks(region))
    # Mocks and config first; only then is the program executed.
    pulumi.runtime.set_all_config(config, secret_keys)
    pulumi.runtime.set_mocks(monitor.mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    from pulumi.runtime.settings import get_root_resource
    from pulumi.runtime.stack import run_pulumi_func

    def program() -> None:
        runpy.run_module("infra.__main__", run_name="__main__")

    _sync_await(run_pulumi_func(program))
    root = get_root_resource()
    exported = dict(getattr(root, "outputs", {}) or {})
    values, secrets = _sync_await(_resolve_outputs(exported))
    return StackRun(stack=stack, resources=monitor.records, outputs=values, secret_outputs=secrets)


def run_stack(stack: str, overrides: Mapping[str, Any] | None = None) -> StackRun:
    """Execute the program for `stack` under mocks and return everything it declared."""
    return contextvars.Context().run(_run, stack, overrides)
