"""The post-deploy suite's AWS requests, evaluated against a stack's deploy role (issue 15 item 5).

deploy.yml runs `python -m pipelines.postdeploy smoke --reader-key-checks` (and the seeded gate)
right after `pulumi up`, with the same deploy role. Its requests are
`pipelines.postdeploy.requests.SUITE_REQUESTS` (held equal to the calls the suite makes by
tests/unit/test_postdeploy_requests.py); each names its resource by a stack output, found here
among the stack's resources under mocks, so a renamed or re-encrypted resource is followed.

As in AWS, a request is evaluated with every policy that decides it: the role's identity
policies (bootstrap/policies.py; deploy roles carry no permissions boundary, the workloads'
boundary caps the roles they create), the bucket's policy, and for the KMS use a customer managed
key implies, that key's own policy (KMS honours an identity policy only where the key policy
lets the account's IAM grant it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from bootstrap.policies import SECRETS_KEY_TAG, STACK_TAG, secrets_key_policy
from infra.policy.coverage import Gap, _Index, deployer_for, physical_name
from infra.policy.evaluator import Document, Principal, Request, allowed
from infra.tools.offline import ACCOUNT_ID, ResourceRecord, StackRun
from pipelines.postdeploy.requests import SECRETS_PROVIDER_REQUESTS, SUITE_REQUESTS, AwsRequest

# A sample object key for object-level requests (the canary lives under `_canary/`).
_OBJECT = "_canary/postdeploy-probe.md"
# Secrets Manager appends six random characters to a secret's name in its ARN.
_SECRET_SUFFIX = "-AbCdEf"  # noqa: S105 - an ARN suffix, not a secret
_ARNS = {
    "aws:s3/bucket:Bucket": "arn:aws:s3:::{name}",
    "aws:dynamodb/table:Table": "arn:aws:dynamodb:{region}:{account}:table/{name}",
    "aws:secretsmanager/secret:Secret": "arn:aws:secretsmanager:{region}:{account}:secret:{name}"
    + _SECRET_SUFFIX,
}
_BUCKET_ENCRYPTION = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
_BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
# What every boto3 call carries: HTTPS, TLS 1.2 or later (the bucket policy denies anything else).
_TRANSPORT = {"aws:SecureTransport": "true", "s3:TlsVersion": "1.3"}


@dataclass(frozen=True)
class Evaluated:
    """One request, the resource policy that also decides it, and which suite request it serves
    (None: the Pulumi CLI's decryption of the stack's outputs)."""

    request: Request
    resource_policy: Document | None
    serves: AwsRequest | None


def _tags(record: ResourceRecord) -> dict[str, str]:
    tags = record.inputs.get("tags")
    if isinstance(tags, dict) and tags.get(STACK_TAG):
        return {f"aws:ResourceTag/{STACK_TAG}": str(tags[STACK_TAG])}
    return {}


def _key_reference(run: StackRun, record: ResourceRecord, index: _Index) -> object:
    """The customer managed key encrypting `record`, as its input names it (None: an AWS key)."""
    if record.type == "aws:dynamodb/table:Table":
        return (record.inputs.get("serverSideEncryption") or {}).get("kmsKeyArn")
    if record.type == "aws:secretsmanager/secret:Secret":
        return record.inputs.get("kmsKeyId")
    for config in run.of_type(_BUCKET_ENCRYPTION):
        if index.find(config.inputs.get("bucket")) is record:
            for rule in config.inputs.get("rules") or []:
                default = rule.get("applyServerSideEncryptionByDefault") or {}
                if default.get("sseAlgorithm") == "aws:kms" and default.get("kmsMasterKeyId"):
                    return default["kmsMasterKeyId"]
    return None


def _bucket_policy(run: StackRun, record: ResourceRecord, index: _Index) -> Document | None:
    documents = [
        json.loads(p.inputs["policy"])
        for p in run.of_type(_BUCKET_POLICY)
        if index.find(p.inputs.get("bucket")) is record
    ]
    if len(documents) > 1:
        raise LookupError(f"bucket {physical_name(record)} has {len(documents)} bucket policies")
    return documents[0] if documents else None


def _kms_requests(
    run: StackRun, need: AwsRequest, record: ResourceRecord, index: _Index, region: str
) -> Iterator[Evaluated]:
    reference = _key_reference(run, record, index)
    if not need.kms or reference is None:
        return
    key = index.find(reference)
    if key is None or key.type != "aws:kms/key:Key":
        raise LookupError(f"{physical_name(record)} is encrypted with {reference}, no key of the stack")
    arn = f"arn:aws:kms:{region}:{ACCOUNT_ID}:key/{key.state.get('keyId', key.name)}"
    context = {
        **_tags(key),
        "kms:ViaService": f"{need.service}.{region}.amazonaws.com",
        "kms:CallerAccount": ACCOUNT_ID,
    }
    policy = json.loads(key.inputs["policy"]) if key.inputs.get("policy") else None
    for action in need.kms:
        yield Evaluated(Request(action, arn, context), policy, need)


def _expand(run: StackRun, need: AwsRequest, index: _Index, region: str) -> list[Evaluated]:
    value = run.outputs.get(need.output)
    record = index.find(value)
    if record is None:
        raise LookupError(f"stack output {need.output}={value!r} names no resource of the stack")
    template = _ARNS.get(record.type)
    if template is None:
        raise LookupError(f"{record.type}: no ARN format in infra/policy/suite_coverage.py")
    arn = template.format(region=region, account=ACCOUNT_ID, name=physical_name(record))
    if record.type == "aws:s3/bucket:Bucket":
        # Object requests carry the object's tags, not the bucket's, and meet the bucket policy.
        resource = f"{arn}/{_OBJECT}" if need.objects else arn
        policy = _bucket_policy(run, record, index)
        direct = Evaluated(Request(need.action, resource, _TRANSPORT), policy, need)
    else:
        direct = Evaluated(Request(need.action, arn, _tags(record)), None, need)
    return [direct, *_kms_requests(run, need, record, index, region)]


def secrets_provider_requests(stack: str, region: str) -> list[Evaluated]:
    """`pulumi stack output --show-secrets`: decrypting with the stack's bootstrap secrets key."""
    deployer = deployer_for(stack)
    # The key's id is AWS's; its alias names it in the secrets provider.
    arn = f"arn:aws:kms:{region}:{ACCOUNT_ID}:key/{deployer.secrets_alias.removeprefix('alias/')}"
    context = {f"aws:ResourceTag/{SECRETS_KEY_TAG}": "true"}
    policy = secrets_key_policy(deployer, ACCOUNT_ID)
    return [Evaluated(Request(a, arn, context), policy, None) for a in SECRETS_PROVIDER_REQUESTS]


def suite_requests(run: StackRun, region: str) -> list[Evaluated]:
    """Every request the post-deploy suite makes against `run`'s stack, KMS use included."""
    index = _Index(run)
    direct = [e for need in SUITE_REQUESTS for e in _expand(run, need, index, region)]
    return [*secrets_provider_requests(run.stack, region), *direct]


def suite_gaps(
    run: StackRun, principal: Principal, region: str, requests: tuple[AwsRequest, ...] = SUITE_REQUESTS
) -> list[Gap]:
    """The suite's requests `principal` may not make, and every one whose resource is not found."""
    index = _Index(run)
    found = [
        Gap("post-deploy --from-stack (pulumi stack output --show-secrets)", f"refused {e.request}")
        for e in secrets_provider_requests(run.stack, region)
        if not allowed(principal, e.request, e.resource_policy)
    ]
    for need in requests:
        label = f"post-deploy {need.action} on {need.output}"
        try:
            evaluated = _expand(run, need, index, region)
        except LookupError as error:
            found.append(Gap(label, str(error)))
            continue
        found += [
            Gap(label, f"refused {e.request}")
            for e in evaluated
            if not allowed(principal, e.request, e.resource_policy)
        ]
    return found
