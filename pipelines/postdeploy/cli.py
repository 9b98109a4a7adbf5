"""`python -m pipelines.postdeploy smoke|gate [--from-stack STACK | --from-local FILE]`.

Without a source flag the target comes from environment variables alone
(`service.contract.Env`: POSTDEPLOY_API_URL, POSTDEPLOY_API_KEY, DOCUMENT_BUCKET, ...);
with one, env vars still override it value by value. Exit status 0 only if every check
passed, 2 if the target could not be resolved.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from pipelines.postdeploy import access, config, gate, smoke
from pipelines.postdeploy.client import ApiClient
from pipelines.postdeploy.report import Check, emit
from pipelines.postdeploy.store import DocumentStore, S3Store, s3_client, secret_string

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_GOLDEN = Path(__file__).resolve().parent / "golden" / "platform-docs.json"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.postdeploy", description=__doc__.split("\n")[0]
    )
    parser.add_argument("suite", choices=["smoke", "gate"])
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--from-stack", metavar="STACK", help="read the target from this Pulumi stack's outputs"
    )
    source.add_argument("--from-local", metavar="FILE", type=Path, help="read it from .data/platform.json")
    parser.add_argument("--golden", type=Path, default=DEFAULT_GOLDEN, help="golden-set file (gate)")
    parser.add_argument("--seed", action="store_true", help="upload the golden set's documents first (gate)")
    parser.add_argument("--expect-artifact-sha256", help="fail unless the stack runs this artifact (smoke)")
    parser.add_argument(
        "--reader-key-checks",
        action="store_true",
        help="also check that a temporary reader key is confined to its workspace and role, then "
        "revoked (smoke; needs write access to the target's key store: docs/access-control.md)",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for ingestion")
    parser.add_argument("--poll-interval", type=float, default=3.0)
    parser.add_argument("--json-report", type=Path, help="also write the checks as JSON here")
    parser.add_argument(
        "--previous",
        type=Path,
        help="the previous deploy's figures (a --record file); fail on a drop larger than the margin (gate)",
    )
    parser.add_argument(
        "--record", type=Path, help="write this run's figures here for the next deploy (gate)"
    )
    return parser


def resolve_target(args: argparse.Namespace, environ: Mapping[str, str]) -> config.Target:
    if args.from_local is not None:
        return config.with_env_overrides(config.from_local(args.from_local), environ)
    if args.from_stack is not None:
        outputs = config.stack_outputs(args.from_stack)
        region = environ.get("AWS_REGION") or config.DEFAULT_REGION
        reader = partial(secret_string, region=region)
        target = config.from_outputs(outputs, f"stack {args.from_stack}", reader, environ)
        return config.with_env_overrides(target, environ)
    return config.from_env(environ)


Connect = Callable[[config.Target], tuple[ApiClient, DocumentStore]]
IssuerFor = Callable[[config.Target], access.KeyIssuer]


def key_issuer(target: config.Target) -> access.KeyIssuer:
    """The target's key store, written directly (operator credentials), as `ragctl keys` does."""
    if target.keys_table and target.key_pepper_secret_arn:
        import boto3

        from service.api.keys_dynamodb import DynamoDbKeyStore

        client: Any = boto3.client(
            "dynamodb", region_name=target.region, endpoint_url=target.aws_endpoint_url
        )
        arn = target.key_pepper_secret_arn
        return access.StoreKeyIssuer(
            DynamoDbKeyStore(client, target.keys_table), lambda: secret_string(arn, target.region).encode()
        )
    if target.data_dir:
        from pipelines.keys_cli import local_pepper
        from service.api.keys_sqlite import SqliteKeyStore, local_keys_path

        data_dir = Path(target.data_dir)
        return access.StoreKeyIssuer(
            SqliteKeyStore(local_keys_path(data_dir)), lambda: local_pepper(data_dir)
        )
    raise config.ConfigError(f"{target.source} names no key store (keys table or local data directory)")


def connect(target: config.Target) -> tuple[ApiClient, DocumentStore]:
    """The target's API and document bucket (tests pass an in-process pair instead)."""
    return ApiClient(target.api_url, target.api_key), S3Store(s3_client(target), target.document_bucket)


def run(
    args: argparse.Namespace,
    target: config.Target,
    connector: Connect = connect,
    issuer_for: IssuerFor = key_issuer,
) -> list[Check]:
    client, store = connector(target)
    try:
        if args.suite == "smoke":
            settings = smoke.SmokeSettings(
                ingest_timeout=args.timeout,
                delete_timeout=args.timeout,
                poll_interval=args.poll_interval,
                expect_artifact_sha256=args.expect_artifact_sha256,
            )
            checks = smoke.Smoke(client, store, settings).run(target.artifact_sha256)
            if args.reader_key_checks and all(c.ok for c in checks[:1]):
                checks += access.reader_key_checks(client, issuer_for(target))
            return checks
        return run_gate(args, client, store)
    finally:
        client.close()


def run_gate(args: argparse.Namespace, client: ApiClient, store: DocumentStore) -> list[Check]:
    """Seed, ask, judge, record, and always remove the evaluation corpus."""
    golden = gate.load_golden(args.golden)
    previous = gate.load_figures(args.previous) if args.previous is not None else None
    settings = gate.GateSettings(ingest_timeout=args.timeout, poll_interval=args.poll_interval)
    checks: list[Check] = []
    if args.seed:
        checks.append(gate.seed(golden, store, client, REPO_ROOT, settings))
        if not checks[-1].ok:
            return checks
    if args.previous is not None and previous is None:
        checks.append(Check("previous deploy's figures", True, f"none at {args.previous}: first deploy"))
    try:
        if golden.corpus is not None:
            checks.append(gate.seed_corpus(golden.corpus, store, client, settings))
            if not checks[-1].ok:
                return checks
        result = gate.run_gate(golden, client, previous)
        checks += result.checks
        if args.record is not None and result.figures:
            gate.save_figures(args.record, golden, result.figures)
        return checks
    finally:
        if golden.corpus is not None:
            checks.append(gate.clean_corpus(golden.corpus, store))


def main(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    connector: Connect = connect,
) -> int:
    args = build_parser().parse_args(argv)
    env = os.environ if environ is None else environ
    try:
        target = resolve_target(args, env)
    except (config.ConfigError, OSError, ValueError) as exc:
        print(f"postdeploy {args.suite}: cannot resolve the target: {exc}", file=sys.stderr)
        return 2
    print(f"postdeploy {args.suite}: {target.api_url} (from {target.source})")
    return emit(f"postdeploy {args.suite}", run(args, target, connector), sys.stdout, args.json_report)
