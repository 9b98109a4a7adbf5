"""ARNs this stack can compute before the resources exist (so grants have no cycles).

Formats: https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html
"""

from __future__ import annotations

import re

# Cross-region inference profile ids carry a geography prefix
# (https://docs.aws.amazon.com/bedrock/latest/userguide/inference-profiles-support.html).
_PROFILE_PREFIX = re.compile(r"^(us|eu|apac|us-gov|jp|au|ca|global)\.")


def bucket_arn(bucket: str) -> str:
    return f"arn:aws:s3:::{bucket}"


def opensearch_domain_arn(region: str, account: str, domain: str) -> str:
    return f"arn:aws:es:{region}:{account}:domain/{domain}"


def log_group_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:logs:{region}:{account}:log-group:{name}"


def bedrock_model_arns(region: str, account: str, model_id: str) -> list[str]:
    """The ARNs `bedrock:InvokeModel` needs for one configured model id.

    A plain model id is a foundation model in this region. An inference-profile id
    needs the profile ARN plus the foundation model in every region the profile
    routes to, which IAM can only express with a region wildcard in the ARN.
    """
    if not _PROFILE_PREFIX.match(model_id):
        return [f"arn:aws:bedrock:{region}::foundation-model/{model_id}"]
    base = _PROFILE_PREFIX.sub("", model_id)
    return [
        f"arn:aws:bedrock:{region}:{account}:inference-profile/{model_id}",
        f"arn:aws:bedrock:*::foundation-model/{base}",
    ]
