"""AWS's own lists of valid values, read from botocore's bundled service models.

botocore ships the API models the AWS SDK is generated from, so an instance type or
a runtime that AWS does not accept fails here, at config time, instead of minutes
into `pulumi up`. The lists move with the installed botocore version.
"""

from __future__ import annotations

from functools import cache

import botocore.session
from botocore.model import StringShape

# CloudWatch Logs accepts only these retention periods; the model documents them in
# prose rather than as an enum
# (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutRetentionPolicy.html).
LOG_RETENTION_DAYS: frozenset[int] = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}
)


@cache
def _enum(service: str, shape: str) -> frozenset[str]:
    model = botocore.session.get_session().get_service_model(service)
    found = model.shape_for(shape)
    if not isinstance(found, StringShape):
        raise TypeError(f"{service}.{shape} is not an enum shape")
    return frozenset(found.enum)


def opensearch_instance_types() -> frozenset[str]:
    return _enum("opensearch", "OpenSearchPartitionInstanceType")


def opensearch_volume_types() -> frozenset[str]:
    return _enum("opensearch", "VolumeType")


def opensearch_tls_policies() -> frozenset[str]:
    return _enum("opensearch", "TLSSecurityPolicy")


def lambda_runtimes() -> frozenset[str]:
    return _enum("lambda", "Runtime")


def lambda_architectures() -> frozenset[str]:
    return _enum("lambda", "Architecture")


@cache
def iam_role_name_max() -> int:
    """IAM's limit on a role name (64), from the model rather than from memory."""
    shape = botocore.session.get_session().get_service_model("iam").shape_for("roleNameType")
    return int(shape.metadata["max"])


@cache
def _string_limits(service: str, shape: str) -> tuple[int, int, str]:
    """(min, max, pattern) of a string shape: AWS's own constraints on a value."""
    found = botocore.session.get_session().get_service_model(service).shape_for(shape)
    meta = found.metadata
    return int(meta.get("min", 0)), int(meta["max"]), str(meta.get("pattern", ""))


def cognito_domain_limits() -> tuple[int, int, str]:
    """A Cognito prefix domain: CreateUserPoolDomain's `DomainType`."""
    return _string_limits("cognito-idp", "DomainType")


def cognito_redirect_url_limits() -> tuple[int, int, str]:
    """A callback or logout URL of an app client: `RedirectUrlType`."""
    return _string_limits("cognito-idp", "RedirectUrlType")
