"""Every AWS request the post-deploy suite makes with the deploy job's credentials, as data.

The deploy job runs `python -m pipelines.postdeploy smoke --reader-key-checks` and `gate --seed`
with `--from-stack`, as the stack's deploy role. Each request is listed with the stack output
that names its resource (`service.contract.Output`), so the offline proof can find that
resource in any stack and evaluate the request against the stack's deploy role
(`infra.policy.suite_coverage`: `make rehearse`, tests/infra/test_postdeploy_role.py).

The list is kept honest by tests/unit/test_postdeploy_requests.py: it runs both suites against
moto, records every call their AWS clients make, and fails on a call missing here or an entry
here that no suite makes. `--from-stack` also runs the Pulumi CLI (`SECRETS_PROVIDER_REQUESTS`).
"""

from __future__ import annotations

from dataclasses import dataclass

from service.contract import Output

# What a service asks KMS with the caller's rights when the resource is encrypted with a
# customer managed key (the stack key encrypts every one of these, infra/components/encryption.py):
# - Secrets Manager decrypts the secret value
#   (https://docs.aws.amazon.com/secretsmanager/latest/userguide/security-encryption.html#security-encryption-authz);
# - S3 generates a data key for an SSE-KMS upload, bucket key or not
#   (https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html#require-sse-kms);
# - DynamoDB uses the table's key through the service on the caller's behalf (the key policy of
#   DynamoDB's managed key: "Allow access through Amazon DynamoDB for all principals in the account
#   that are authorized to use Amazon DynamoDB",
#   https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/encryption.howitworks.html).
DECRYPT = ("kms:Decrypt",)
DATA_KEY = ("kms:GenerateDataKey",)


@dataclass(frozen=True)
class AwsRequest:
    """One IAM action on the resource a stack output names, and the KMS use it implies."""

    action: str
    output: str
    kms: tuple[str, ...] = ()
    # An S3 object of the bucket (`<bucket>/<key>`) rather than the bucket itself.
    objects: bool = False
    why: str = ""

    @property
    def service(self) -> str:
        """The service that calls KMS on the caller's behalf (`kms:ViaService`)."""
        return self.action.split(":", 1)[0]


SUITE_REQUESTS: tuple[AwsRequest, ...] = (
    AwsRequest(
        "secretsmanager:GetSecretValue",
        Output.API_KEYS_SECRET_ARN,
        DECRYPT,
        why="the API key both suites call with (cli.resolve_target)",
    ),
    AwsRequest(
        "s3:PutObject",
        Output.DOCUMENT_BUCKET,
        DATA_KEY,
        objects=True,
        why="the smoke canary and the gate's documents (store.S3Store.put)",
    ),
    AwsRequest(
        "s3:DeleteObject",
        Output.DOCUMENT_BUCKET,
        objects=True,
        why="the canary and the gate's corpus removed again (store.S3Store.delete)",
    ),
    AwsRequest(
        "secretsmanager:GetSecretValue",
        Output.API_KEY_PEPPER_SECRET_ARN,
        DECRYPT,
        why="the pepper the temporary reader key is hashed with (cli.key_issuer)",
    ),
    AwsRequest(
        "dynamodb:PutItem",
        Output.KEYS_TABLE,
        DECRYPT,
        why="the temporary reader key written, then revoked (keys_dynamodb.DynamoDbKeyStore)",
    ),
    AwsRequest(
        "dynamodb:GetItem",
        Output.KEYS_TABLE,
        DECRYPT,
        why="revoking reads the key's record first (keys_dynamodb.DynamoDbKeyStore.revoke)",
    ),
)

# `--from-stack` reads the outputs with `pulumi stack output --json --show-secrets`, which decrypts
# them with the stack's `awskms` secrets provider: bootstrap's secrets key of the stack's deployer
# (bootstrap/deployers.py `secrets_provider`). Evaluated against that key's policy.
SECRETS_PROVIDER_REQUESTS: tuple[str, ...] = ("kms:Decrypt",)
