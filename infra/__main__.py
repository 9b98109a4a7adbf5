"""The rag-platform Pulumi program: assembles the components and shows every IAM grant.

Read top to bottom: config, key and network, data stores and generated secrets, the three
roles with their grants, the search cluster and its provisioner, the two functions, the
optional edge, observability, outputs. The providers the stack file chooses
(`search.provider`, `models.provider`, `rerank.enabled`; docs/providers.md and
docs/search-backends.md) decide which grants, endpoints and resources exist.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

# `pulumi up` runs this file with infra/ as the working directory; the program
# imports `infra.*` and `service.contract` from the repository root.
_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:  # pragma: no cover - only under the Pulumi CLI
    sys.path.insert(0, str(_ROOT))

import pulumi  # noqa: E402
import pulumi_aws as aws  # noqa: E402

from infra import arns  # noqa: E402
from infra.components.api import RagApi, RagApiArgs  # noqa: E402
from infra.components.edge import ApiEdge, ApiEdgeArgs  # noqa: E402
from infra.components.encryption import StackKey, StackKeyArgs  # noqa: E402
from infra.components.function import Artifact, FunctionSpec, log_group_name  # noqa: E402
from infra.components.function_role import FunctionRole, FunctionRoleArgs  # noqa: E402
from infra.components.ingester import Ingester, IngesterArgs  # noqa: E402
from infra.components.keys import KeysTable, KeysTableArgs  # noqa: E402
from infra.components.ledger import LedgerTable, LedgerTableArgs  # noqa: E402
from infra.components.network import HTTPS, INTERFACE_SERVICES, Network, NetworkArgs  # noqa: E402
from infra.components.observability import Observability, ObservabilityArgs, ObservedResources  # noqa: E402
from infra.components.provisioner import SearchProvisioner, SearchProvisionerArgs  # noqa: E402
from infra.components.queues import IngestQueues, IngestQueuesArgs  # noqa: E402
from infra.components.search import DomainAccess, HttpAccess, SearchCluster, SearchClusterArgs  # noqa: E402
from infra.components.secrets import GeneratedSecret, GeneratedSecretArgs  # noqa: E402
from infra.components.sign_in import CognitoSignIn, SignInArgs  # noqa: E402
from infra.components.storage import DocumentBucket, DocumentBucketArgs  # noqa: E402
from infra.config import (  # noqa: E402
    BedrockModelsConfig,
    ExternalSearchConfig,
    OpenAICompatibleModelsConfig,
    OpenSearchServiceConfig,
    load_from_pulumi,
)
from infra.hosted_sign_in import default_domain_prefix  # noqa: E402
from infra.iam import Grant  # noqa: E402
from infra.naming import role_name, stack_prefix  # noqa: E402
from service.contract import (  # noqa: E402
    PROJECT,
    EmbedderName,
    Env,
    GeneratorName,
    Output,
    ResourceNames,
    SearchBackendName,
)
from service.search import security  # noqa: E402
from service.search.mappings import MAPPING_VERSION  # noqa: E402

cfg = load_from_pulumi()
tags = cfg.tags()
prefix = stack_prefix(cfg.stack)
account = aws.get_caller_identity_output().account_id
region = cfg.region
artifact = Artifact.read(_ROOT / cfg.artifact_path)
# The provisioner makes a handful of REST calls; 60 s leaves room for a cold domain. Its
# process peaks near 260 MB (the artifact smoke measures it: the service package's imports),
# so 512 MB, not 256.
PROVISIONER_MEMORY_MB, PROVISIONER_TIMEOUT_SECONDS = 512, 60

# Bedrock's runtime endpoints are in the VPC only when the stack calls them.
bedrock_endpoints = (
    *(("bedrock-runtime",) if isinstance(cfg.models, BedrockModelsConfig) else ()),
    *(("bedrock-agent-runtime",) if cfg.rerank.enabled else ()),
)

# --- key, network, data stores ------------------------------------------------
key = StackKey("key", StackKeyArgs(alias=prefix, region=region, account_id=account, tags=tags))
network = Network(
    "network",
    NetworkArgs(
        cidr=cfg.network.cidr,
        az_count=cfg.network.az_count,
        nat_gateway=cfg.network.nat_gateway,
        region=region,
        flow_log_group_name=f"/aws/vpc/{prefix}/flow-logs",
        flow_log_role_name=role_name(cfg.stack, "flow-logs"),
        flow_log_retention_days=cfg.observability.log_retention_days,
        kms_key_arn=key.key.arn,
        tags=tags,
        interface_services=(*INTERFACE_SERVICES, *bedrock_endpoints),
        internet_ports=cfg.internet_ports or (HTTPS,),
    ),
)
names = account.apply(lambda a: ResourceNames.for_stack(cfg.stack, a))
plain_names = ResourceNames.for_stack(cfg.stack)
bucket_name = names.apply(lambda n: n.document_bucket)
queues = IngestQueues(
    "ingest",
    IngestQueuesArgs(
        queue_name=plain_names.ingest_queue,
        dlq_name=plain_names.dead_letter_queue,
        kms_key_arn=key.key.arn,
        source_bucket_arn=bucket_name.apply(arns.bucket_arn),
        account_id=account,
        visibility_timeout_seconds=cfg.ingest.visibility_timeout_seconds,
        max_receive_count=cfg.ingest.max_receive_count,
        retention_seconds=cfg.ingest.retention_seconds,
        dlq_retention_seconds=cfg.ingest.dlq_retention_seconds,
        tags=tags,
    ),
)
documents = DocumentBucket(
    "documents",
    DocumentBucketArgs(
        bucket_name=bucket_name,
        kms_key_arn=key.key.arn,
        queue_arn=queues.queue.arn,
        noncurrent_version_expiration_days=cfg.bucket.noncurrent_version_expiration_days,
        force_destroy=cfg.bucket.force_destroy,
        tags=tags,
    ),
    opts=pulumi.ResourceOptions(depends_on=[queues]),
)
ledger = LedgerTable(
    "ledger",
    LedgerTableArgs(
        table_name=plain_names.ledger_table,
        kms_key_arn=key.key.arn,
        point_in_time_recovery=cfg.ledger.point_in_time_recovery,
        deletion_protection=cfg.ledger.deletion_protection,
        tags=tags,
    ),
)

# Issue 15: scoped API keys, by id; the API may only read them (grant ReadKeys below).
keys_table = KeysTable(
    "keys",
    KeysTableArgs(
        table_name=plain_names.keys_table,
        kms_key_arn=key.key.arn,
        deletion_protection=cfg.ledger.deletion_protection,
        tags=tags,
    ),
)


def generated_secret(
    name: str, description: str, *, as_json_list: bool = False, generation: int | None = None
) -> GeneratedSecret:
    """A stack-generated secret `<prefix>/<name>`, rotated together by api.secretsGeneration
    unless it has a `generation` of its own."""
    return GeneratedSecret(
        name,
        GeneratedSecretArgs(
            secret_name=f"{prefix}/{name}",
            description=f"{description}, generated by the stack",
            kms_key_arn=key.key.arn,
            generation=cfg.api.secrets_generation if generation is None else generation,
            tags=tags,
            as_json_list=as_json_list,
        ),
    )


# Generated by the stack: a first `pulumi up` needs no secret set by hand.
api_keys = generated_secret("api-keys", "API keys accepted by the RAG API (JSON list)", as_json_list=True)
# Keys the HMAC of every scoped key's secret (service/api/keys.py). Replacing it would invalidate
# every key at once, so it has a generation of its own, not rotated with api.secretsGeneration.
key_pepper = generated_secret("api-key-pepper", "Pepper of the scoped API keys' hashes", generation=1)
# Issue 15: signed-in users, from the stack's own Cognito pool or an external issuer. The hosted
# sign-in sends the browser back to the API's page, whose URL exists only once the API (or its
# edge) does, and the API's function needs this client's id: the URL is handed in as a deferred
# Output, resolved below. No cycle: the URL comes from the HTTP API, CloudFront or the custom
# domain, none of which waits for the function.
api_url_for_sign_in: pulumi.Output[str]
resolve_api_url_for_sign_in: Callable[[pulumi.Output[str]], None]
api_url_for_sign_in, resolve_api_url_for_sign_in = pulumi.deferred_output()
sign_in = (
    CognitoSignIn(
        "sign-in",
        SignInArgs(
            pool_name=prefix,
            region=region,
            mfa=cfg.auth.cognito.mfa,
            password_minimum_length=cfg.auth.cognito.password_minimum_length,
            deletion_protection=cfg.auth.cognito.deletion_protection,
            groups=sorted(cfg.auth.group_map),
            tags=tags,
            domain_prefix=(
                cfg.auth.cognito.domain_prefix or account.apply(lambda a: default_domain_prefix(prefix, a))
            ),
            api_url=api_url_for_sign_in,
        ),
    )
    if cfg.auth.cognito.enabled
    else None
)
# With the edge on, CloudFront proves itself to the API with this value (service/api/origin.py).
origin_verify = (
    generated_secret("origin-verify", "Header value CloudFront sends to the RAG API")
    if cfg.api.waf.enabled
    else None
)


def operator_secret(name: str) -> tuple[str, pulumi.Output[str]]:
    """(name, ARN pattern) of a secret the operator creates before the first deploy.

    Credentials of endpoints outside AWS are the operator's, never the stack's or the stack
    file's; `make preflight` fails while one is missing or empty. Secrets Manager appends six
    random characters to a secret's ARN, which `-??????` matches
    (https://docs.aws.amazon.com/secretsmanager/latest/userguide/auth-and-access_iam-policies.html).
    """
    secret_name = f"{prefix}/{name}"
    return secret_name, account.apply(
        lambda a: f"arn:aws:secretsmanager:{region}:{a}:secret:{secret_name}-??????"
    )


external_search = cfg.search if isinstance(cfg.search, ExternalSearchConfig) else None
bedrock_models = cfg.models if isinstance(cfg.models, BedrockModelsConfig) else None
openai_models = cfg.models if isinstance(cfg.models, OpenAICompatibleModelsConfig) else None
search_secret = operator_secret("search-credentials") if external_search else None
model_secret = None if bedrock_models else operator_secret("model-api-key")

# --- IAM: every permission of every function, in one place ---------------------
ingester_name, api_name, provisioner_name = (
    f"{prefix}-{p}" for p in ("ingester", "api", "search-provisioner")
)
domain_arn = account.apply(lambda a: arns.opensearch_domain_arn(region, a, cfg.domain_name))
alias = plain_names.index_alias
# What each role may send to the search domain, by HTTP verb and path (the client calls
# of service/search/cluster.py: bulk is POST /_bulk, search and count POST <alias>/_search
# and <alias>/_count). The same lists go into the domain's access policy below.
SEARCH_WRITE = HttpAccess(("es:ESHttpPost",), ("_bulk", f"{alias}/_search"))
SEARCH_READ = HttpAccess(("es:ESHttpPost",), (f"{alias}/_search", f"{alias}/_count"))
# Roles, role mappings, templates, index creation, settings and mapping reads; never DELETE or POST.
SEARCH_ADMIN = HttpAccess(("es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPut"), ("*",))


def search_grants(sid: str, access: HttpAccess) -> list[Grant]:
    """The domain's HTTP verbs on its paths; on an external cluster, its credentials' secret."""
    if search_secret is not None:
        return [Grant("ReadSearchCredentials", ("secretsmanager:GetSecretValue",), [search_secret[1]])]
    return [Grant(sid, access.actions, [domain_arn.apply(access.resources)])]


def bedrock_arns(model_id: str) -> pulumi.Output[list[str]]:
    return account.apply(lambda a: arns.bedrock_model_arns(region, a, model_id))


def embed_grants(sid: str) -> list[Grant]:
    """Titan on Bedrock, or the OpenAI-compatible endpoint's key."""
    if bedrock_models is None:
        assert model_secret is not None
        return [Grant("ReadModelApiKey", ("secretsmanager:GetSecretValue",), [model_secret[1]])]
    return [Grant(sid, ("bedrock:InvokeModel",), [bedrock_arns(bedrock_models.embedding_model_id)])]


def generate_grants() -> list[Grant]:
    """The Converse model on Bedrock; an OpenAI-compatible endpoint needs the key embed_grants gave."""
    if bedrock_models is None:
        return []
    # Streaming answers use ConverseStream, which needs InvokeModelWithResponseStream
    # (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html).
    return [
        Grant(
            "GenerateAnswers",
            ("bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"),
            [bedrock_arns(bedrock_models.generator_model_id)],
        )
    ]


def rerank_grants() -> list[Grant]:
    """Standalone Rerank needs `bedrock:Rerank` (no resource type: "*") and InvokeModel on the model
    (https://docs.aws.amazon.com/bedrock/latest/userguide/rerank-prereq.html)."""
    if not cfg.rerank.enabled:
        return []
    return [
        Grant("Rerank", ("bedrock:Rerank",), ["*"]),
        Grant("InvokeRerankModel", ("bedrock:InvokeModel",), [bedrock_arns(cfg.rerank.model_id)]),
    ]


vpc_subnet_arns = [
    pulumi.Output.all(account, s.id).apply(lambda v: f"arn:aws:ec2:{region}:{v[0]}:subnet/{v[1]}")
    for s in network.private_subnets
]
vpc_sg_arn = pulumi.Output.all(account, network.lambda_security_group.id).apply(
    lambda v: f"arn:aws:ec2:{region}:{v[0]}:security-group/{v[1]}"
)
eni_arn = account.apply(lambda a: f"arn:aws:ec2:{region}:{a}:network-interface/*")


def runtime_grants(function_name: str) -> list[Grant]:
    """What any VPC Lambda with tracing needs: its own log group, ENIs in our subnets, X-Ray."""
    log_arn = account.apply(lambda a: arns.log_group_arn(region, a, log_group_name(function_name)) + ":*")
    return [
        Grant("OwnLogs", ("logs:CreateLogStream", "logs:PutLogEvents"), [log_arn]),
        # https://docs.aws.amazon.com/lambda/latest/dg/configuration-vpc.html#configuration-vpc-permissions
        Grant(
            "VpcEnis",
            (
                "ec2:AssignPrivateIpAddresses",
                "ec2:CreateNetworkInterface",
                "ec2:DeleteNetworkInterface",
                "ec2:UnassignPrivateIpAddresses",
            ),
            [eni_arn, vpc_sg_arn, *vpc_subnet_arns],
        ),
        Grant("DescribeEnis", ("ec2:DescribeNetworkInterfaces",), ["*"]),
        Grant("Tracing", ("xray:PutTelemetryRecords", "xray:PutTraceSegments"), ["*"]),
        Grant("StackKey", ("kms:Decrypt", "kms:GenerateDataKey"), [key.key.arn]),
    ]


ingester_grants = [
    *runtime_grants(ingester_name),
    # SendMessage: a large document continues in a follow-up message (Env.MAX_CHUNKS_PER_MESSAGE).
    Grant(
        "ConsumeIngestQueue",
        (
            "sqs:ChangeMessageVisibility",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ReceiveMessage",
            "sqs:SendMessage",
        ),
        [queues.queue.arn],
    ),
    # Poison documents go straight to the DLQ with their reason (service/ingest/queue.py).
    Grant("DeadLetterPoison", ("sqs:SendMessage",), [queues.dead_letter_queue.arn]),
    Grant(
        "ReadDocuments",
        ("s3:GetObject", "s3:GetObjectVersion"),
        [documents.bucket.arn.apply(lambda a: f"{a}/*")],
    ),
    Grant(
        "Ledger",
        (
            "dynamodb:DeleteItem",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:Query",
            "dynamodb:UpdateItem",
        ),
        [ledger.table.arn, ledger.table.arn.apply(lambda a: f"{a}/index/*")],
    ),
    *search_grants("WriteIndex", SEARCH_WRITE),
    *embed_grants("Embed"),
]
api_grants = [
    *runtime_grants(api_name),
    Grant("ReadApiKeys", ("secretsmanager:GetSecretValue",), [api_keys.secret.arn]),
    # One GetItem per request with a scoped key; creating and revoking keys takes operator
    # credentials (`ragctl keys`), so a compromised API cannot mint itself a key.
    Grant("ReadKeys", ("dynamodb:GetItem",), [keys_table.table.arn]),
    Grant("ReadKeyPepper", ("secretsmanager:GetSecretValue",), [key_pepper.secret.arn]),
    Grant(
        # Scan: the ledger's status counts (service/ingest/ledger_dynamodb.py).
        "LedgerRead",
        ("dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan"),
        [ledger.table.arn, ledger.table.arn.apply(lambda a: f"{a}/index/*")],
    ),
    *search_grants("QueryIndex", SEARCH_READ),
    *embed_grants("EmbedQuestions"),
    *generate_grants(),
    *rerank_grants(),
]
if origin_verify is not None:
    api_grants.append(
        Grant("ReadOriginSecret", ("secretsmanager:GetSecretValue",), [origin_verify.secret.arn])
    )
provisioner_grants = [
    *runtime_grants(provisioner_name),
    *search_grants("AdministerSearch", SEARCH_ADMIN),
]
ingester_role = FunctionRole(
    "ingester",
    FunctionRoleArgs(role_name=role_name(cfg.stack, "ingester"), grants=ingester_grants, tags=tags),
)
api_role = FunctionRole(
    "api", FunctionRoleArgs(role_name=role_name(cfg.stack, "api"), grants=api_grants, tags=tags)
)
provisioner_role = FunctionRole(
    "search-provisioner",
    FunctionRoleArgs(
        role_name=role_name(cfg.stack, "search-provisioner"), grants=provisioner_grants, tags=tags
    ),
)

# --- search ------------------------------------------------------------------------
# An external cluster (search.provider: external) is the operator's: no domain, no access
# policy, no role mapping; its credentials' secret decides what the functions may do there.
search = None
if isinstance(cfg.search, OpenSearchServiceConfig):
    search = SearchCluster(
        "search",
        SearchClusterArgs(
            domain_name=cfg.domain_name,
            domain_arn=domain_arn,
            settings=cfg.search,
            vpc_id=network.vpc.id,
            subnet_ids=[s.id for s in network.private_subnets],
            client_security_group_id=network.lambda_security_group.id,
            access=[
                DomainAccess(ingester_role.role.arn, SEARCH_WRITE),
                DomainAccess(api_role.role.arn, SEARCH_READ),
                DomainAccess(provisioner_role.role.arn, SEARCH_ADMIN),
            ],
            # A separate principal: the ingester parses untrusted documents, so it is no admin.
            master_role_arn=provisioner_role.role.arn,
            kms_key_arn=key.key.arn,
            log_retention_days=cfg.observability.log_retention_days,
            tags=tags,
        ),
    )

# --- functions -----------------------------------------------------------------------
search_endpoint: pulumi.Output[str] = (
    search.domain.endpoint.apply(lambda e: f"https://{e}")
    if search is not None
    else pulumi.Output.from_input(external_search.endpoint if external_search else "")
)
search_env: dict[str, pulumi.Input[str]] = {
    Env.ENVIRONMENT: cfg.environment,
    Env.STACK_NAME: cfg.stack,
    Env.LOG_LEVEL: cfg.log_level,
    Env.SEARCH_BACKEND: (
        SearchBackendName(external_search.engine) if external_search else SearchBackendName.OPENSEARCH
    ).value,
    Env.SEARCH_ENDPOINT: search_endpoint,
    Env.SEARCH_INDEX_ALIAS: alias,
    Env.EMBEDDING_DIMENSION: str(cfg.models.embedding_dimension),
    Env.POWERTOOLS_METRICS_NAMESPACE: PROJECT,
    # The secret's name, never its value (service/secrets.py reads it at cold start).
    **({Env.SEARCH_CREDENTIALS_SECRET_ID: search_secret[0]} if search_secret else {}),
}
model_env: dict[str, pulumi.Input[str]] = {}
if bedrock_models is not None:
    model_env = {
        Env.EMBEDDER: EmbedderName.BEDROCK.value,
        Env.EMBEDDING_MODEL_ID: bedrock_models.embedding_model_id,
        Env.GENERATOR: GeneratorName.BEDROCK.value,
        Env.GENERATOR_MODEL_ID: bedrock_models.generator_model_id,
    }
if openai_models is not None and model_secret is not None:
    model_env = {
        Env.EMBEDDER: EmbedderName.OPENAI.value,
        Env.EMBEDDING_MODEL_ID: openai_models.embedding_model,
        Env.GENERATOR: GeneratorName.OPENAI.value,
        Env.GENERATOR_MODEL_ID: openai_models.generator_model,
        Env.OPENAI_BASE_URL: openai_models.base_url,
        # The secret's name, never its value (service/secrets.py reads it at cold start).
        Env.OPENAI_API_KEY_SECRET_ID: model_secret[0],
    }
shared_env: dict[str, pulumi.Input[str]] = {
    **search_env,
    # The provisioner below owns the index; the functions never create it.
    Env.SEARCH_PROVISIONED: "true",
    Env.DOCUMENT_BUCKET: documents.bucket.bucket,
    Env.INGEST_QUEUE_URL: queues.queue.url,
    Env.DEAD_LETTER_QUEUE_URL: queues.dead_letter_queue.url,
    Env.LEDGER_TABLE: ledger.table.name,
    **model_env,
}


def function_spec(
    name: str,
    *,
    handler: str,
    role: FunctionRole,
    memory: int,
    timeout: int,
    reserved: int,
    env: dict[str, pulumi.Input[str]],
    base_env: dict[str, pulumi.Input[str]] = shared_env,
    description: str = "",
) -> FunctionSpec:
    return FunctionSpec(
        function_name=name,
        handler=handler,
        artifact=artifact,
        runtime=cfg.lambda_runtime,
        architecture=cfg.lambda_architecture,
        memory_mb=memory,
        timeout_seconds=timeout,
        reserved_concurrency=reserved,
        role_arn=role.role.arn,
        subnet_ids=[s.id for s in network.private_subnets],
        security_group_id=network.lambda_security_group.id,
        environment={**base_env, **env},
        kms_key_arn=key.key.arn,
        log_retention_days=cfg.observability.log_retention_days,
        tags=tags,
        description=description,
    )


def auth_env() -> dict[str, pulumi.Input[str]]:
    """The API's sign-in variables (service/settings.py); none when signing in is off."""
    auth = cfg.auth
    if sign_in is not None:
        issuer: pulumi.Input[str] = sign_in.issuer
        audience: pulumi.Input[str] = sign_in.client.id
    elif auth.issuer and auth.audience:
        issuer, audience = auth.issuer, auth.audience
    else:
        return {}
    env: dict[str, pulumi.Input[str]] = {
        Env.AUTH_ISSUER: issuer,
        Env.AUTH_AUDIENCE: audience,
        Env.AUTH_ALGORITHMS: ",".join(auth.algorithms),
        Env.AUTH_GROUPS_CLAIM: auth.groups_claim_name,
        Env.AUTH_USER_CLAIM: auth.user_claim_name,
        Env.AUTH_GROUP_MAP: json.dumps(
            {g: grant.model_dump() for g, grant in sorted(auth.group_map.items())}
        ),
    }
    if sign_in is not None:
        # The page's sign-in: the pool's hosted endpoints and the public client (no secret).
        env[Env.AUTH_CLIENT_ID] = sign_in.client.id
        env[Env.AUTH_AUTHORIZE_URL] = sign_in.authorize_url
        env[Env.AUTH_TOKEN_URL] = sign_in.token_url
        env[Env.AUTH_LOGOUT_URL] = sign_in.logout_url
    elif auth.client_id and auth.authorize_url and auth.token_url:
        env[Env.AUTH_CLIENT_ID] = auth.client_id
        env[Env.AUTH_AUTHORIZE_URL] = auth.authorize_url
        env[Env.AUTH_TOKEN_URL] = auth.token_url
        if auth.logout_url:
            env[Env.AUTH_LOGOUT_URL] = auth.logout_url
    if auth.jwks_url:
        env[Env.AUTH_JWKS_URL] = auth.jwks_url
    return env


# OpenSearch security and the first index, applied from inside the VPC on every `pulumi up`
# that changes any input of the fingerprint (service/search/provision.py). On an external
# cluster only the index: its roles are the operator's (docs/search-backends.md).
if isinstance(cfg.search, OpenSearchServiceConfig):
    replicas = cfg.search.replicas
    provisioning_fingerprint = pulumi.Output.all(
        ingester_role.role.arn, api_role.role.arn, search_endpoint
    ).apply(
        lambda v: security.fingerprint(
            security.security_document(security.platform_roles(alias, v[0], v[1])),
            MAPPING_VERSION,
            replicas,
            cfg.models.embedding_dimension,
            v[2],
            artifact.sha256_hex,
        )
    )
    provisioning_env: dict[str, pulumi.Input[str]] = {
        Env.SEARCH_REPLICAS: str(replicas),
        Env.SEARCH_WRITER_ROLE_ARN: ingester_role.role.arn,
        Env.SEARCH_READER_ROLE_ARN: api_role.role.arn,
    }
else:
    provisioning_fingerprint = search_endpoint.apply(
        lambda endpoint: security.fingerprint(
            MAPPING_VERSION, cfg.models.embedding_dimension, endpoint, artifact.sha256_hex
        )
    )
    provisioning_env = {}
provisioner = SearchProvisioner(
    "search-provisioner",
    SearchProvisionerArgs(
        function=function_spec(
            provisioner_name,
            handler="service.handlers.provision.handler",
            role=provisioner_role,
            memory=PROVISIONER_MEMORY_MB,
            timeout=PROVISIONER_TIMEOUT_SECONDS,
            reserved=1,
            base_env=search_env,
            env={Env.POWERTOOLS_SERVICE_NAME: "search-provisioner", **provisioning_env},
        ),
        fingerprint=provisioning_fingerprint,
    ),
    opts=pulumi.ResourceOptions(depends_on=[provisioner_role, *([search] if search else [])]),
)
ingester = Ingester(
    "ingester",
    IngesterArgs(
        function=function_spec(
            ingester_name,
            handler="service.handlers.ingest.handler",
            role=ingester_role,
            memory=cfg.ingest.memory_mb,
            timeout=cfg.ingest.timeout_seconds,
            reserved=cfg.ingest.reserved_concurrency,
            env={Env.POWERTOOLS_SERVICE_NAME: "ingester"},
        ),
        queue_arn=queues.queue.arn,
        queue_visibility_timeout_seconds=cfg.ingest.visibility_timeout_seconds,
        batch_size=cfg.ingest.batch_size,
        max_batching_window_seconds=cfg.ingest.max_batching_window_seconds,
        max_concurrency=cfg.ingest.max_concurrency,
        start_after=[provisioner.invocation],
    ),
    # No message is taken from the queue before the index and the writer role exist.
    opts=pulumi.ResourceOptions(depends_on=[ingester_role, provisioner]),
)
api = RagApi(
    "api",
    RagApiArgs(
        function=function_spec(
            api_name,
            handler="service.handlers.api.handler",
            # The API reads its keys (and the origin secret) at cold start; a new generation
            # changes this description, so Lambda replaces every instance on rotation.
            description=f"{PROJECT} API, secrets generation {cfg.api.secrets_generation}",
            role=api_role,
            memory=cfg.api.memory_mb,
            timeout=cfg.api.timeout_seconds,
            reserved=cfg.api.reserved_concurrency,
            env={
                Env.POWERTOOLS_SERVICE_NAME: "api",
                Env.API_KEYS_SECRET_ARN: api_keys.secret.arn,
                Env.KEYS_TABLE: keys_table.table.name,
                Env.API_KEY_PEPPER_SECRET_ARN: key_pepper.secret.arn,
                **auth_env(),
                Env.CORS_ORIGINS: ",".join(cfg.api.cors_origins),
                Env.RATE_LIMIT_PER_MINUTE: str(cfg.api.rate_limit_per_minute),
                **(
                    {
                        Env.RERANK_MODEL_ARN: arns.bedrock_model_arns(region, "", cfg.rerank.model_id)[0],
                        Env.RERANK_DEPTH: str(cfg.rerank.top_n),
                    }
                    if cfg.rerank.enabled
                    else {}
                ),
                **({Env.ORIGIN_VERIFY_SECRET_ARN: origin_verify.secret.arn} if origin_verify else {}),
            },
        ),
        throttle_rate_limit=cfg.api.throttle_rate_limit,
        throttle_burst_limit=cfg.api.throttle_burst_limit,
        cors_origins=cfg.api.cors_origins,
        # With WAF on, the custom domain belongs to CloudFront instead (see ApiEdge).
        custom_domain=None if cfg.api.waf.enabled else cfg.api.custom_domain,
        kms_key_arn=key.key.arn,
        log_retention_days=cfg.observability.log_retention_days,
        tags=tags,
    ),
    opts=pulumi.ResourceOptions(depends_on=[api_role, provisioner]),
)
api_url = api.url
if origin_verify is not None:
    edge = ApiEdge(
        "edge",
        ApiEdgeArgs(
            api_endpoint=api.http_api.api_endpoint,
            origin_verify_value=origin_verify.value,
            acl_name=f"{prefix}-api",
            rate_per_five_minutes=cfg.api.waf.rate_per_five_minutes,
            custom_domain=cfg.api.custom_domain,
            tags=tags,
        ),
    )
    api_url = edge.url
resolve_api_url_for_sign_in(api_url)

# --- observability -------------------------------------------------------------------
observability = Observability(
    "observability",
    ObservabilityArgs(
        dashboard_name=prefix,
        budget_name=f"{prefix}-monthly",
        stack=cfg.stack,
        settings=cfg.observability,
        resources=ObservedResources(
            region=region,
            account_id=account,
            ingest_queue_name=queues.queue.name,
            dead_letter_queue_name=queues.dead_letter_queue.name,
            ingester_function_name=ingester.function.name,
            api_function_name=api.function.name,
            http_api_id=api.http_api.id,
            domain_name=search.domain.domain_name if search else None,
        ),
        kms_key_arn=key.key.arn,
        tags=tags,
    ),
)

# --- outputs (keys from service/contract.py) ----------------------------------------
pulumi.export(Output.API_URL, api_url)
pulumi.export(Output.DOCUMENT_BUCKET, documents.bucket.bucket)
pulumi.export(Output.INGEST_QUEUE_URL, queues.queue.url)
pulumi.export(Output.DEAD_LETTER_QUEUE_URL, queues.dead_letter_queue.url)
pulumi.export(Output.LEDGER_TABLE, ledger.table.name)
pulumi.export(Output.SEARCH_ENDPOINT, search_endpoint)
pulumi.export(Output.DASHBOARD_URL, observability.dashboard_url)
pulumi.export(Output.API_KEYS_SECRET_ARN, api_keys.secret.arn)
# A Pulumi secret: `pulumi stack output apiKey --show-secrets` prints it.
pulumi.export(Output.API_KEY, api_keys.value)
pulumi.export(Output.ARTIFACT_SHA256, artifact.sha256_hex)
pulumi.export(Output.KEYS_TABLE, keys_table.table.name)
pulumi.export(Output.API_KEY_PEPPER_SECRET_ARN, key_pepper.secret.arn)
if sign_in is not None:
    pulumi.export(Output.AUTH_ISSUER, sign_in.issuer)
    pulumi.export(Output.AUTH_CLIENT_ID, sign_in.client.id)
elif cfg.auth.issuer:
    pulumi.export(Output.AUTH_ISSUER, cfg.auth.issuer)
