"""The typed stack configuration: read once, validated, failing early with the key named.

`Pulumi.<stack>.yaml` holds values only. Every `rag-platform:*` key maps to one field
below (camelCase in YAML, snake_case here); an unknown key or an invalid value raises
`ConfigError` naming the full key, e.g. `rag-platform:search.instanceType`. Environment
differences live in the YAML files, never in `if stack == ...` branches.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from ipaddress import IPv4Network
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

from infra import aws_catalog
from infra.hosted_sign_in import check_domain_prefix, default_domain_prefix
from infra.naming import domain_name, stack_prefix
from infra.stacks import read_tiers
from service.contract import PROJECT
from service.settings import TOKEN_ALGORITHMS, GroupGrant

# Provider keys the program may read; anything else under `aws:` is a typo.
PROVIDER_KEYS = frozenset({"aws:region", "aws:profile", "aws:allowedAccountIds"})

# HTTP APIs cut integrations off at 30 s
# (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html).
HTTP_API_INTEGRATION_TIMEOUT_MAX = 29
# TLS policies that still allow TLS 1.0/1.1.
_WEAK_TLS = frozenset({"Policy-Min-TLS-1-0-2019-07"})
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_MODEL_ID = re.compile(r"^[a-z0-9.-]+\.[a-z0-9.:-]+$")
# The Bedrock model ARNs the program can scope a grant to: the ARN alternatives of botocore's
# `bedrock-runtime` InvokeModel/Converse `modelId` pattern (botocore/data/bedrock-runtime/
# 2023-09-30/service-2.json, shape `InvokeModelIdentifier`) for foundation models, inference
# profiles, provisioned throughput, imported models and custom-model deployments. A foundation
# model's ARN has no account. Application inference profiles and prompt routers are left out:
# the models they route to cannot be read from the ARN, so no least-privilege grant exists.
MODEL_ARN = re.compile(
    r"^arn:aws(-[a-z]+)*:bedrock:(?P<region>[a-z0-9-]{1,20}):"
    r"(?:(?::foundation-model/[a-z0-9-]{1,63}\.[a-z0-9.:-]{1,127})"
    r"|(?:\d{12}:inference-profile/[a-zA-Z0-9.:-]+)"
    r"|(?:\d{12}:(?:provisioned-model|imported-model|custom-model-deployment)/[a-z0-9]{12}))$"
)
# Cross-region inference profile ids carry a geography prefix
# (https://docs.aws.amazon.com/bedrock/latest/userguide/inference-profiles-support.html).
PROFILE_PREFIX = re.compile(r"^(us|eu|apac|us-gov|jp|au|ca|global)\.")
# Union members of the provider-selected sections, dropped from error locations so a bad
# key is named as it appears in the stack file (`search.endpoint`, not `search.external.endpoint`).
_UNION_TAGS = frozenset({"opensearch-service", "external", "bedrock", "openai-compatible"})
# A tag value (`environment`) that every taggable AWS service and the cost reports accept.
_TAG_SAFE = r"^[a-z][a-z0-9-]{0,63}$"


class ConfigError(ValueError):
    """Invalid stack configuration; each line names the offending key."""


def _member_of(allowed: Any, what: str) -> Any:
    def check(value: str) -> str:
        choices = allowed()
        if value not in choices:
            raise ValueError(f"{value!r} is not a valid {what} (botocore lists {len(choices)} values)")
        return value

    return AfterValidator(check)


def _check_log_retention(days: int) -> int:
    if days not in aws_catalog.LOG_RETENTION_DAYS:
        raise ValueError(
            f"{days} is not a CloudWatch Logs retention ({sorted(aws_catalog.LOG_RETENTION_DAYS)})"
        )
    return days


def _check_email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError(f"{value!r} is not an email address")
    return value


def _check_tier(value: str) -> str:
    names = [t.name for t in read_tiers()]
    if value not in names:
        raise ValueError(f"{value!r} is not a tier of infra/tiers.yaml ({', '.join(names)})")
    return value


def _check_model_id(value: str) -> str:
    if not (_MODEL_ID.match(value) or MODEL_ARN.match(value)):
        raise ValueError(
            f"{value!r} is not a Bedrock model id such as 'amazon.titan-embed-text-v2:0', an inference "
            "profile id such as 'eu.amazon.nova-lite-v1:0', or a model or inference-profile ARN "
            "(for a model outside Bedrock, set models.provider: openai-compatible)"
        )
    return value


def _check_foundation_model(value: str) -> str:
    # Rerank takes a foundation model's ARN, which the program builds from this id.
    if not _MODEL_ID.match(value) or PROFILE_PREFIX.match(value):
        raise ValueError(f"{value!r} is not a foundation-model id such as 'amazon.rerank-v1:0'")
    return value


def _check_https_url(value: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme != "https" or not parsed.hostname:
        raise ValueError(f"{value!r} must be an https:// URL: credentials are sent with every request")
    if parsed.username or parsed.password:
        raise ValueError("credentials belong in the Secrets Manager secret, never in the URL")
    return value.rstrip("/")


InstanceType = Annotated[str, _member_of(aws_catalog.opensearch_instance_types, "OpenSearch instance type")]
VolumeType = Annotated[str, _member_of(aws_catalog.opensearch_volume_types, "EBS volume type")]
TlsPolicy = Annotated[str, _member_of(aws_catalog.opensearch_tls_policies, "TLS security policy")]
Runtime = Annotated[str, _member_of(aws_catalog.lambda_runtimes, "Lambda runtime")]
Architecture = Annotated[str, _member_of(aws_catalog.lambda_architectures, "Lambda architecture")]
LogRetention = Annotated[int, AfterValidator(_check_log_retention)]
Email = Annotated[str, AfterValidator(_check_email)]
ModelId = Annotated[str, AfterValidator(_check_model_id)]
HttpsUrl = Annotated[str, AfterValidator(_check_https_url)]
MemoryMb = Annotated[int, Field(ge=128, le=10240)]


class _Section(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, extra="forbid", frozen=True)


class NetworkConfig(_Section):
    cidr: IPv4Network
    az_count: int = Field(ge=1, le=3)
    # A NAT gateway costs ~$33/month before traffic; VPC endpoints cover every AWS API
    # the Lambdas call, so staging needs none.
    nat_gateway: bool = False


class OpenSearchServiceConfig(_Section):
    """`provider: opensearch-service` (the default): the stack provisions a VPC domain."""

    provider: Literal["opensearch-service"] = "opensearch-service"
    engine_version: Annotated[str, Field(pattern=r"^OpenSearch_\d+\.\d+$")]
    instance_type: InstanceType
    instance_count: int = Field(ge=1, le=80)
    availability_zone_count: Literal[1, 2, 3] = 1
    dedicated_master_type: InstanceType | None = None
    dedicated_master_count: Literal[0, 3, 5] = 0
    volume_type: VolumeType = "gp3"
    volume_size_gb: int = Field(ge=10, le=3072)
    tls_policy: TlsPolicy = "Policy-Min-TLS-1-2-PFS-2023-10"
    automated_snapshot_start_hour: int = Field(default=3, ge=0, le=23)
    # Replicas of every platform index; the provisioning function applies them on each
    # `pulumi up`. Required, so each stack file states what its node count allows.
    replicas: int = Field(ge=0, le=10)

    @model_validator(mode="after")
    def _topology(self) -> OpenSearchServiceConfig:
        if self.tls_policy in _WEAK_TLS:
            raise ValueError(f"tlsPolicy {self.tls_policy} allows TLS below 1.2")
        # A replica is never placed on the node holding its primary, so more replicas than
        # nodes-1 stay unassigned and the cluster (and its alarm) stays yellow
        # (https://docs.aws.amazon.com/opensearch-service/latest/developerguide/handling-errors.html#handling-errors-yellow-cluster-status).
        if self.replicas > self.instance_count - 1:
            raise ValueError(
                f"replicas ({self.replicas}) must be at most instanceCount - 1 ({self.instance_count - 1}): "
                "extra replicas cannot be placed and keep the cluster yellow"
            )
        # Zone awareness only protects data that has a copy in another zone
        # (https://docs.aws.amazon.com/opensearch-service/latest/developerguide/managedomains-multiaz.html).
        if self.zone_awareness and self.replicas < 1:
            raise ValueError("replicas must be at least 1 when availabilityZoneCount > 1")
        if self.instance_count % self.availability_zone_count:
            raise ValueError(
                f"instanceCount ({self.instance_count}) must be a multiple of "
                f"availabilityZoneCount ({self.availability_zone_count}) so each zone holds the same shards"
            )
        if (self.dedicated_master_count > 0) != (self.dedicated_master_type is not None):
            raise ValueError("dedicatedMasterType and dedicatedMasterCount must be set together")
        return self

    @property
    def zone_awareness(self) -> bool:
        return self.availability_zone_count > 1


class ExternalSearchConfig(_Section):
    """`provider: external`: an Elasticsearch or OpenSearch cluster the stack does not own.

    No domain is provisioned. The credentials live in the Secrets Manager secret
    `<project>-<stack>/search-credentials`, which the operator creates before the first
    deploy (docs/search-backends.md); `make preflight` fails while it is missing or empty.
    """

    provider: Literal["external"]
    engine: Literal["elasticsearch", "opensearch"]
    endpoint: HttpsUrl


SearchConfig = Annotated[
    Annotated[OpenSearchServiceConfig, Tag("opensearch-service")]
    | Annotated[ExternalSearchConfig, Tag("external")],
    Discriminator(lambda v: _provider(v, "opensearch-service")),
]


class IngestConfig(_Section):
    batch_size: int = Field(ge=1, le=10000)
    max_batching_window_seconds: int = Field(ge=0, le=300)
    # SQS event sources accept 2-1000
    # (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html).
    max_concurrency: int = Field(ge=2, le=1000)
    reserved_concurrency: int = Field(ge=1, le=1000)
    timeout_seconds: int = Field(ge=1, le=900)
    memory_mb: MemoryMb
    visibility_timeout_seconds: int = Field(ge=0, le=43200)
    max_receive_count: int = Field(ge=1, le=1000)
    retention_seconds: int = Field(ge=60, le=1_209_600)
    dlq_retention_seconds: int = Field(ge=60, le=1_209_600)

    @model_validator(mode="after")
    def _consistent(self) -> IngestConfig:
        # Lambda rejects an SQS trigger whose queue visibility timeout is below the
        # function timeout; AWS advises 6x
        # (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html).
        if self.timeout_seconds >= self.visibility_timeout_seconds:
            raise ValueError(
                f"timeoutSeconds ({self.timeout_seconds}) must be below "
                f"visibilityTimeoutSeconds ({self.visibility_timeout_seconds})"
            )
        # More pollers than reserved instances only produces throttles.
        if self.max_concurrency > self.reserved_concurrency:
            raise ValueError(
                f"maxConcurrency ({self.max_concurrency}) must not exceed "
                f"reservedConcurrency ({self.reserved_concurrency})"
            )
        # Batches above 10 need a batching window
        # (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html).
        if self.batch_size > 10 and self.max_batching_window_seconds == 0:
            raise ValueError("batchSize above 10 requires maxBatchingWindowSeconds >= 1")
        # A standard queue keeps a message's original enqueue time in the DLQ, so a
        # shorter DLQ retention would drop failures early
        # (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html).
        if self.dlq_retention_seconds <= self.retention_seconds:
            raise ValueError("dlqRetentionSeconds must exceed retentionSeconds")
        return self


class CustomDomainConfig(_Section):
    domain_name: Annotated[str, Field(pattern=r"^([a-z0-9-]+\.)+[a-z]{2,}$")]
    certificate_arn: Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/.+$")]


class WafConfig(_Section):
    enabled: bool = False
    # Requests per 5-minute window per client IP before WAF blocks it.
    rate_per_five_minutes: int = Field(default=2000, ge=10, le=2_000_000_000)


class ApiConfig(_Section):
    timeout_seconds: int = Field(ge=1, le=HTTP_API_INTEGRATION_TIMEOUT_MAX)
    memory_mb: MemoryMb
    reserved_concurrency: int = Field(ge=1, le=1000)
    throttle_rate_limit: float = Field(gt=0)
    throttle_burst_limit: int = Field(ge=1)
    cors_origins: tuple[str, ...] = ()
    rate_limit_per_minute: int = Field(default=600, ge=1)
    custom_domain: CustomDomainConfig | None = None
    waf: WafConfig = WafConfig()
    # The stack generates its API key (and, with the edge on, the origin secret); bump
    # this to replace both on the next `pulumi up` (docs/deploying.md, "Rotating the API key").
    secrets_generation: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _edge(self) -> ApiConfig:
        # CloudFront only takes ACM certificates from us-east-1
        # (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/cnames-and-https-requirements.html).
        if (
            self.waf.enabled
            and self.custom_domain
            and ":us-east-1:" not in self.custom_domain.certificate_arn
        ):
            raise ValueError("customDomain.certificateArn must be in us-east-1 when waf.enabled (CloudFront)")
        return self


class BedrockModelsConfig(_Section):
    """`provider: bedrock` (the default): Titan embeddings and a Converse chat model."""

    provider: Literal["bedrock"] = "bedrock"
    embedding_model_id: ModelId
    # Titan Text Embeddings v2 emits 256, 512 or 1024 dimensions
    # (https://docs.aws.amazon.com/bedrock/latest/userguide/titan-embedding-models.html).
    embedding_dimension: Literal[256, 512, 1024]
    generator_model_id: ModelId

    @model_validator(mode="after")
    def _titan(self) -> BedrockModelsConfig:
        # The embedder speaks Titan v2's request format (service/embed/bedrock.py); another
        # model id would fail the ingester's first call, after the deploy.
        model = self.embedding_model_id
        if not MODEL_ARN.match(model) and "titan-embed-text-v2" not in model:
            raise ValueError(
                f"embeddingModelId {model!r} is not Titan Text Embeddings v2 (amazon.titan-embed-text-v2:0)"
            )
        return self

    @property
    def model_ids(self) -> tuple[str, ...]:
        return (self.embedding_model_id, self.generator_model_id)


class OpenAICompatibleModelsConfig(_Section):
    """`provider: openai-compatible`: chat and embeddings from one OpenAI-compatible endpoint.

    The API key lives in the Secrets Manager secret `<project>-<stack>/model-api-key`, which the
    operator creates before the first deploy (docs/providers.md); `make preflight` fails while
    it is missing or empty. The functions reach the endpoint through the NAT gateway.
    """

    provider: Literal["openai-compatible"]
    # Including the API version, as the OpenAI SDKs take it: https://api.openai.com/v1.
    base_url: HttpsUrl
    generator_model: Annotated[str, Field(min_length=1, max_length=256)]
    embedding_model: Annotated[str, Field(min_length=1, max_length=256)]
    # What the model returns; checked on every response (service/embed/openai_compat.py).
    embedding_dimension: int = Field(ge=8, le=8192)


ModelsConfig = Annotated[
    Annotated[BedrockModelsConfig, Tag("bedrock")]
    | Annotated[OpenAICompatibleModelsConfig, Tag("openai-compatible")],
    Discriminator(lambda v: _provider(v, "bedrock")),
]


class RerankConfig(_Section):
    """Bedrock's Rerank API reorders the retrieved passages before the answer is written."""

    enabled: bool = False
    # A rerank model id, e.g. amazon.rerank-v1:0 or cohere.rerank-v3-5:0
    # (https://docs.aws.amazon.com/bedrock/latest/userguide/rerank-supported.html).
    model_id: Annotated[str, AfterValidator(_check_foundation_model)] = "amazon.rerank-v1:0"
    # Candidates sent to Rerank per question; the API takes at most 1,000 sources
    # (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_agent-runtime_Rerank.html).
    top_n: int = Field(default=50, ge=1, le=1000)


def _provider(value: Any, default: str) -> str:
    if isinstance(value, Mapping):
        return str(value.get("provider", default))
    return str(getattr(value, "provider", default))


class ObservabilityConfig(_Section):
    alarm_email: Email
    log_retention_days: LogRetention
    monthly_budget_usd: float = Field(gt=0)
    budget_alert_percent: float = Field(gt=0, le=1000)
    api_p99_latency_ms: int = Field(ge=10)
    oldest_message_age_seconds: int = Field(ge=60)
    free_storage_min_mb: int = Field(ge=256)
    jvm_memory_pressure_percent: int = Field(ge=50, le=100)


class UsageConfig(_Section):
    """Monthly usage the stack is sized for: what `make cost` prices and compares with the budget.

    Stated per stack, beside the sizing it justifies; none of it changes what is deployed.
    """

    documents_ingested: int = Field(ge=0, description="Documents created or updated per month.")
    chunks_per_document: float = Field(gt=0)
    queries: int = Field(ge=0, description="Questions and searches per month.")
    prompt_tokens_per_query: int = Field(
        ge=0, description="Question, history and passages sent to the model."
    )
    completion_tokens_per_query: int = Field(ge=0)
    embedding_tokens_per_chunk: int = Field(ge=0)
    ingest_seconds_per_document: float = Field(ge=0)
    api_seconds_per_query: float = Field(ge=0)
    sqs_requests_per_document: int = Field(ge=0)
    stored_documents_gb: float = Field(ge=0)
    ledger_items_gb: float = Field(ge=0)
    log_gb: float = Field(ge=0)
    nat_gb: float = Field(ge=0)
    endpoint_gb: float = Field(ge=0)
    cdn_gb_out: float = Field(ge=0)
    months_of_growth: int = Field(12, ge=1, le=120, description="Horizon of the index-size estimate.")


class LedgerConfig(_Section):
    point_in_time_recovery: bool
    deletion_protection: bool


class BucketConfig(_Section):
    noncurrent_version_expiration_days: int = Field(ge=1, le=3650)
    force_destroy: bool = False


# One https URL the page's CSP can name: no spaces, quotes, commas or semicolons (service/settings.py).
_PAGE_ENDPOINT = r"^https://[^\s;,'\"]+$"


class CognitoConfig(_Section):
    """The user pool the stack creates when `auth.cognito.enabled` (issue 15)."""

    enabled: bool = False
    # OFF is refused: the policy pack requires MFA to be offered (cognito-strong-sign-in).
    mfa: Literal["OPTIONAL", "ON"] = "OPTIONAL"
    # NIST SP 800-63B section 5.1.1.2 asks for at least 8; the policy pack asks for 12.
    password_minimum_length: int = Field(default=12, ge=12, le=99)
    deletion_protection: bool = True
    # The hosted sign-in's `<domainPrefix>.auth.<region>.amazoncognito.com`; unique in the region.
    # Unset: `<project>-<stack>-<8 hex of the account id>` (infra/hosted_sign_in.py).
    domain_prefix: Annotated[str, AfterValidator(check_domain_prefix)] | None = None


class AuthConfig(_Section):
    """Signed-in users (issue 15): a Cognito pool the stack creates, or an external OIDC issuer.

    Both off (the default): the API takes API keys only. A stack's API runs in private subnets,
    so it reaches the issuer's JWKS through the NAT gateway; signing in needs `network.natGateway`.
    """

    cognito: CognitoConfig = CognitoConfig()
    issuer: Annotated[str, Field(pattern=r"^https://[^\s]+$")] | None = None
    audience: str | None = None
    jwks_url: Annotated[str, Field(pattern=r"^https://[^\s]+$")] | None = None
    algorithms: tuple[str, ...] = ("RS256",)
    # Unset: Cognito ID tokens' `cognito:groups` and `email`; an external issuer's `groups` and `sub`.
    groups_claim: str | None = None
    user_claim: str | None = None
    # group -> {workspaces: [...], role: reader|writer|admin}; each Cognito group is created too.
    group_map: dict[str, GroupGrant] = Field(default_factory=dict)
    # An external issuer's page sign-in (code flow with PKCE): its public client and endpoints.
    # Register the stack's API URL (with a trailing /) as the client's redirect URI there.
    # With cognito.enabled the stack sets all four itself.
    client_id: str | None = None
    authorize_url: Annotated[str, Field(pattern=_PAGE_ENDPOINT)] | None = None
    token_url: Annotated[str, Field(pattern=_PAGE_ENDPOINT)] | None = None
    logout_url: Annotated[str, Field(pattern=_PAGE_ENDPOINT)] | None = None

    @model_validator(mode="after")
    def _one_issuer(self) -> AuthConfig:
        if self.cognito.enabled and self.issuer:
            raise ValueError("set either cognito.enabled or issuer, not both")
        if self.issuer and not self.audience:
            raise ValueError("audience is required with issuer")
        page = {"clientId": self.client_id, "authorizeUrl": self.authorize_url, "tokenUrl": self.token_url}
        given = sorted(k for k, v in page.items() if v)
        if given and (self.cognito.enabled or not self.issuer):
            raise ValueError(f"{', '.join(given)} need issuer (cognito.enabled sets its own)")
        if given and len(given) < len(page):
            raise ValueError(f"the page's sign-in needs {', '.join(sorted(set(page) - set(given)))} too")
        refused = sorted(set(self.algorithms) - TOKEN_ALGORITHMS)
        if refused:
            raise ValueError(f"algorithms {refused} are not allowed; use {sorted(TOKEN_ALGORITHMS)}")
        return self

    @property
    def enabled(self) -> bool:
        return self.cognito.enabled or self.issuer is not None

    @property
    def groups_claim_name(self) -> str:
        return self.groups_claim or ("cognito:groups" if self.cognito.enabled else "groups")

    @property
    def user_claim_name(self) -> str:
        return self.user_claim or ("email" if self.cognito.enabled else "sub")


class StackConfig(_Section):
    """Every value a stack may set. Built by `load_stack_config`, never by hand in the program."""

    stack: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,14}$")]
    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")]
    # Free-form: what the stack is called in tags, logs and the health route.
    environment: Annotated[str, Field(pattern=_TAG_SAFE)]
    # What sizing class it is: the tier's rules (infra/tiers.yaml) and its place in the deploy order.
    tier: Annotated[str, AfterValidator(_check_tier)]
    # The GitHub environment guarding its deploy (approvals, OIDC claim); default: the stack name.
    # Read by infra/stacks.py for bootstrap/ and the deploy workflow, not by the program.
    github_environment: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,30}$")] | None = None
    owner: Annotated[str, Field(min_length=1, max_length=128)]
    cost_center: Annotated[str, Field(min_length=1, max_length=128)]
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    artifact_path: Path
    lambda_runtime: Runtime
    lambda_architecture: Architecture
    network: NetworkConfig
    search: SearchConfig
    ingest: IngestConfig
    api: ApiConfig
    models: ModelsConfig
    rerank: RerankConfig = RerankConfig()
    observability: ObservabilityConfig
    ledger: LedgerConfig
    bucket: BucketConfig
    usage: UsageConfig
    auth: AuthConfig = AuthConfig()

    @model_validator(mode="after")
    def _cross_section(self) -> StackConfig:
        if self.auth.enabled and not self.network.nat_gateway:
            raise ValueError(
                "auth (cognito.enabled or issuer) needs network.natGateway: true: the API verifies "
                "tokens with the issuer's published keys (JWKS), fetched over HTTPS from its private subnets"
            )
        if self.auth.cognito.enabled and self.auth.cognito.domain_prefix is None:
            # The default prefix is `<project>-<stack>-<8 hex>`: checked with any 8 hex digits.
            try:
                check_domain_prefix(default_domain_prefix(stack_prefix(self.stack), ""))
            except ValueError as error:
                raise ValueError(f"auth.cognito.domainPrefix must be set: {error}") from None
        if not self.lambda_runtime.startswith("python3."):
            raise ValueError(f"lambdaRuntime {self.lambda_runtime} is not a Python runtime")
        if (
            isinstance(self.search, OpenSearchServiceConfig)
            and self.search.availability_zone_count > self.network.az_count
        ):
            raise ValueError(
                f"search.availabilityZoneCount ({self.search.availability_zone_count}) exceeds "
                f"network.azCount ({self.network.az_count})"
            )
        # Endpoints outside AWS have no VPC endpoint: the private subnets reach them only
        # through the NAT gateway, and without it every call times out after the deploy.
        if self.egress_endpoints and not self.network.nat_gateway:
            raise ValueError(
                f"network.natGateway must be true: {', '.join(self.egress_endpoints)} "
                "are reached over the internet from the private subnets"
            )
        for key, model in self.bedrock_models.items():
            arn = MODEL_ARN.match(model)
            if arn and arn.group("region") != self.region:
                raise ValueError(
                    f"{key} {model!r} is in {arn.group('region')}, not the stack's region {self.region}"
                )
        return self

    @property
    def egress_endpoints(self) -> dict[str, str]:
        """Config key -> https URL of each endpoint outside AWS the functions call."""
        found: dict[str, str] = {}
        if isinstance(self.search, ExternalSearchConfig):
            found["search.endpoint"] = self.search.endpoint
        if isinstance(self.models, OpenAICompatibleModelsConfig):
            found["models.baseUrl"] = self.models.base_url
        return found

    @property
    def internet_ports(self) -> tuple[int, ...]:
        """The TCP ports of the egress endpoints (443 unless the URL names another)."""
        return tuple(sorted({urlparse(url).port or 443 for url in self.egress_endpoints.values()}))

    @property
    def bedrock_models(self) -> dict[str, str]:
        """Config key -> Bedrock model id of every model the stack calls on Bedrock."""
        found: dict[str, str] = {}
        if isinstance(self.models, BedrockModelsConfig):
            found["models.embeddingModelId"] = self.models.embedding_model_id
            found["models.generatorModelId"] = self.models.generator_model_id
        if self.rerank.enabled:
            found["rerank.modelId"] = self.rerank.model_id
        return found

    @property
    def domain_name(self) -> str:
        return domain_name(self.stack)

    def tags(self) -> dict[str, str]:
        """The tags every taggable resource carries (checked by the policy pack)."""
        return {
            "project": PROJECT,
            "environment": self.environment,
            "tier": self.tier,
            "stack": self.stack,
            "owner": self.owner,
            "cost-center": self.cost_center,
        }


def _decode(value: Any) -> Any:
    # The Pulumi engine hands structured values to the program as JSON strings.
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _key_for(loc: Iterable[int | str]) -> str:
    parts = [str(p) for p in loc if str(p) not in _UNION_TAGS]
    if not parts:
        return f"{PROJECT}:<config>"
    head = {"stack": "<stack name>", "region": "aws:region"}.get(parts[0])
    if head:
        return head
    return f"{PROJECT}:{to_camel(parts[0])}" + "".join(f".{p}" for p in parts[1:])


# A cross-section rule has no location of its own; its message starts with the key it blames.
_BLAMED_KEY = re.compile(r"^Value error, (?P<key>[a-z][A-Za-z]*(\.[a-z][A-Za-z]*)+) ")


def _error_line(loc: Iterable[int | str], message: str) -> str:
    blamed = _BLAMED_KEY.match(message) if not list(loc) else None
    key = f"{PROJECT}:{blamed.group('key')}" if blamed else _key_for(loc)
    return f"{key}: {message}"


def load_stack_config(stack: str, raw: Mapping[str, Any]) -> StackConfig:
    """Validate one stack's config map (`project:key` -> value) into a StackConfig.

    Nothing is filled in: a key the map lacks is reported missing, as on `pulumi up`.
    """
    errors: list[str] = []
    values: dict[str, Any] = {"stack": stack}
    for key, value in raw.items():
        namespace, _, name = key.partition(":")
        if key == "aws:region":
            values["region"] = value
        elif namespace == PROJECT and name and name not in {"stack", "region"}:
            values[name] = _decode(value)
        elif key not in PROVIDER_KEYS:
            errors.append(f"{key}: unknown key")
    try:
        config = StackConfig.model_validate(values)
    except ValidationError as error:
        errors += [_error_line(item["loc"], item["msg"]) for item in error.errors()]
        config = None
    if errors or config is None:
        raise ConfigError(f"invalid config for stack {stack!r}:\n  " + "\n  ".join(sorted(errors)))
    return config


def load_from_pulumi() -> StackConfig:
    """Read the running program's config once (as the Pulumi engine or the mocks set it)."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    raw: dict[str, Any] = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    return load_stack_config(pulumi.get_stack(), raw)
