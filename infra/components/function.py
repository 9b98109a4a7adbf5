"""What both platform Lambdas share: the packaged artifact, VPC placement, logs, tracing."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True)
class Artifact:
    """The zip `make package` built; the same file is deployed to every stack."""

    path: Path
    sha256_hex: str

    @classmethod
    def read(cls, path: Path) -> Artifact:
        if not path.is_file():
            raise FileNotFoundError(
                f"rag-platform:artifactPath: {path} does not exist; run `make package` first"
            )
        return cls(path=path, sha256_hex=hashlib.sha256(path.read_bytes()).hexdigest())

    @property
    def source_code_hash(self) -> str:
        # Lambda's CodeSha256 is the base64 of the raw digest; a change redeploys the code.
        return base64.b64encode(bytes.fromhex(self.sha256_hex)).decode()


@dataclass(frozen=True)
class FunctionSpec:
    function_name: str
    handler: str
    artifact: Artifact
    runtime: str
    architecture: str
    memory_mb: int
    timeout_seconds: int
    reserved_concurrency: int
    role_arn: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]
    environment: Mapping[str, pulumi.Input[str]]
    kms_key_arn: pulumi.Input[str]
    log_retention_days: int
    tags: dict[str, str]
    # A change to the description is a configuration change: Lambda starts fresh instances,
    # which is how a rotated secret read at cold start reaches every request.
    description: str = ""


def log_group_name(function_name: str) -> str:
    return f"/aws/lambda/{function_name}"


def make_function(name: str, spec: FunctionSpec, parent: pulumi.Resource) -> aws.lambda_.Function:
    """A VPC Lambda with its own encrypted log group (created first, so retention applies from day one)."""
    child = pulumi.ResourceOptions(parent=parent)
    log_group = aws.cloudwatch.LogGroup(
        f"{name}-logs",
        name=log_group_name(spec.function_name),
        retention_in_days=spec.log_retention_days,
        kms_key_id=spec.kms_key_arn,
        tags=spec.tags,
        opts=child,
    )
    return aws.lambda_.Function(
        f"{name}-function",
        name=spec.function_name,
        code=pulumi.FileArchive(str(spec.artifact.path)),
        source_code_hash=spec.artifact.source_code_hash,
        handler=spec.handler,
        description=spec.description or None,
        runtime=spec.runtime,
        architectures=[spec.architecture],
        memory_size=spec.memory_mb,
        timeout=spec.timeout_seconds,
        reserved_concurrent_executions=spec.reserved_concurrency,
        role=spec.role_arn,
        vpc_config=aws.lambda_.FunctionVpcConfigArgs(
            subnet_ids=list(spec.subnet_ids), security_group_ids=[spec.security_group_id]
        ),
        environment=aws.lambda_.FunctionEnvironmentArgs(variables=dict(spec.environment)),
        kms_key_arn=spec.kms_key_arn,
        tracing_config=aws.lambda_.FunctionTracingConfigArgs(mode="Active"),
        logging_config=aws.lambda_.FunctionLoggingConfigArgs(log_format="JSON", log_group=log_group.name),
        tags=spec.tags,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[log_group]),
    )
