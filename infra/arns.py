"""ARNs this stack can compute before the resources exist (so grants have no cycles).

Formats: https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html
"""

from __future__ import annotations

from infra.config import MODEL_ARN
from infra.config import PROFILE_PREFIX as _PROFILE_PREFIX


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
    routes to, which IAM can only express with a region wildcard in the ARN. A model
    ARN (`infra.config.MODEL_ARN`) is granted as given; an inference-profile ARN also
    gets the foundation models its id routes to.
    """
    if MODEL_ARN.match(model_id):
        profile = model_id.partition(":inference-profile/")[2]
        if not profile:
            return [model_id]
        return [model_id, f"arn:aws:bedrock:*::foundation-model/{_PROFILE_PREFIX.sub('', profile)}"]
    if not _PROFILE_PREFIX.match(model_id):
        return [f"arn:aws:bedrock:{region}::foundation-model/{model_id}"]
    base = _PROFILE_PREFIX.sub("", model_id)
    return [
        f"arn:aws:bedrock:{region}:{account}:inference-profile/{model_id}",
        f"arn:aws:bedrock:*::foundation-model/{base}",
    ]
