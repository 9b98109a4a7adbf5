"""The contract between the infrastructure, the service and the tests.

Every environment-variable name the Lambdas read and every stack-output key the
Pulumi program exports is named here once. `infra/` sets these variables and
exports these keys, `service/settings.py` reads them, and the tests and the
post-deploy suite look them up. Never spell one of these strings anywhere else.

Resource names are derived here too, so the local platform creates its bucket
and queues with the same names as the cloud stack of the same name.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

# The project's name is written once, as `name:` in Pulumi.yaml (`make rename` changes it).
# The Lambda artifact carries Pulumi.yaml at its root beside service/ (infra/tools/package.py),
# so this path holds in the repository and on Lambda alike.
PULUMI_YAML = Path(__file__).resolve().parent.parent / "Pulumi.yaml"
_PROJECT_LINE = re.compile(r"^name:\s*['\"]?(?P<name>[a-z][a-z0-9-]*)['\"]?\s*$", re.MULTILINE)


def project_name(pulumi_yaml: Path = PULUMI_YAML) -> str:
    """The top-level `name:` of a Pulumi.yaml: lowercase, digits and hyphens, as resource names need."""
    match = _PROJECT_LINE.search(pulumi_yaml.read_text())
    if match is None:
        raise RuntimeError(
            f"{pulumi_yaml}: no top-level `name: <project>` of lowercase letters, digits, hyphens"
        )
    return match.group("name")


PROJECT = project_name()


class Env(StrEnum):
    """Environment variables read by `service.settings.Settings`."""

    ENVIRONMENT = "ENVIRONMENT"
    STACK_NAME = "STACK_NAME"
    LOG_LEVEL = "LOG_LEVEL"
    DATA_DIR = "DATA_DIR"
    AWS_REGION = "AWS_REGION"
    # Standard AWS SDK variable: boto3 sends every client to it (moto locally).
    AWS_ENDPOINT_URL = "AWS_ENDPOINT_URL"

    # Storage and queues.
    DOCUMENT_BUCKET = "DOCUMENT_BUCKET"
    INGEST_QUEUE_URL = "INGEST_QUEUE_URL"
    DEAD_LETTER_QUEUE_URL = "DEAD_LETTER_QUEUE_URL"
    LEDGER_TABLE = "LEDGER_TABLE"

    # Search.
    SEARCH_BACKEND = "SEARCH_BACKEND"
    SEARCH_ENDPOINT = "SEARCH_ENDPOINT"
    SEARCH_INDEX_ALIAS = "SEARCH_INDEX_ALIAS"
    SEARCH_API_KEY = "SEARCH_API_KEY"
    # The local engine's k-NN: `exact` (a matrix product), or for millions of chunks `projected`
    # (a scan in 64 principal dimensions, reranked exactly) or `hnsw` (a USearch graph).
    LOCAL_VECTOR_INDEX = "LOCAL_VECTOR_INDEX"
    # Issue 13: an external cluster's credentials (an Elasticsearch API key, or `user:password`
    # for OpenSearch), read from this Secrets Manager secret at cold start, never from plain config.
    SEARCH_CREDENTIALS_SECRET_ID = "SEARCH_CREDENTIALS_SECRET_ID"  # noqa: S105 - a variable name
    # Search engine time limits (service/search/budget.py): a read's total, with retries, and one attempt.
    SEARCH_READ_BUDGET_SECONDS = "SEARCH_READ_BUDGET_SECONDS"
    SEARCH_ATTEMPT_TIMEOUT_SECONDS = "SEARCH_ATTEMPT_TIMEOUT_SECONDS"
    SEARCH_MODE = "SEARCH_MODE"
    HYBRID_ALPHA = "HYBRID_ALPHA"
    HYBRID_CANDIDATES = "HYBRID_CANDIDATES"
    # Issue 14: an optional rerank stage (Bedrock Rerank); unset means no reranking.
    RERANK_MODEL_ARN = "RERANK_MODEL_ARN"
    # Issue 13: how many retrieved candidates the reranker scores (config rerank.topN).
    RERANK_DEPTH = "RERANK_DEPTH"
    # Issue 9: "true" on the stack's functions: the provisioning function created the index
    # during `pulumi up`, so they never create or inspect it (and lack the rights to).
    SEARCH_PROVISIONED = "SEARCH_PROVISIONED"
    # Issue 9: what the provisioning function applies during `pulumi up`.
    SEARCH_REPLICAS = "SEARCH_REPLICAS"
    SEARCH_WRITER_ROLE_ARN = "SEARCH_WRITER_ROLE_ARN"
    SEARCH_READER_ROLE_ARN = "SEARCH_READER_ROLE_ARN"

    # Embedding.
    EMBEDDER = "EMBEDDER"
    EMBEDDING_MODEL_ID = "EMBEDDING_MODEL_ID"
    EMBEDDING_DIMENSION = "EMBEDDING_DIMENSION"
    EMBEDDING_BATCH_SIZE = "EMBEDDING_BATCH_SIZE"
    EMBEDDING_CONCURRENCY = "EMBEDDING_CONCURRENCY"

    # Answer generation.
    GENERATOR = "GENERATOR"
    GENERATOR_MODEL_ID = "GENERATOR_MODEL_ID"
    OPENAI_BASE_URL = "OPENAI_BASE_URL"
    OPENAI_API_KEY = "OPENAI_API_KEY"
    # Issue 13: the OpenAI-compatible endpoint's key, read from this secret at cold start.
    OPENAI_API_KEY_SECRET_ID = "OPENAI_API_KEY_SECRET_ID"  # noqa: S105 - a variable name

    # Ingestion.
    CHUNK_SIZE = "CHUNK_SIZE"
    CHUNK_OVERLAP = "CHUNK_OVERLAP"
    MAX_DOCUMENT_BYTES = "MAX_DOCUMENT_BYTES"
    RETRY_BUDGET_SECONDS = "RETRY_BUDGET_SECONDS"
    # Issue 3: new chunks one ingest message may embed before a continuation message takes over.
    MAX_CHUNKS_PER_MESSAGE = "MAX_CHUNKS_PER_MESSAGE"

    # API.
    API_KEYS = "API_KEYS"
    API_KEYS_SECRET_ARN = "API_KEYS_SECRET_ARN"  # noqa: S105 - a variable name, not a secret
    MAX_QUESTION_CHARS = "MAX_QUESTION_CHARS"
    MAX_BODY_BYTES = "MAX_BODY_BYTES"
    RATE_LIMIT_PER_MINUTE = "RATE_LIMIT_PER_MINUTE"
    CORS_ORIGINS = "CORS_ORIGINS"
    # Issue 9: with the edge on, the secret CloudFront sends in ORIGIN_VERIFY_HEADER.
    ORIGIN_VERIFY_SECRET_ARN = "ORIGIN_VERIFY_SECRET_ARN"  # noqa: S105 - a variable name, not a secret

    # Issue 15: scoped API keys (service/api/keys.py): the keys table and the pepper of their hashes.
    KEYS_TABLE = "KEYS_TABLE"
    API_KEY_PEPPER_SECRET_ARN = "API_KEY_PEPPER_SECRET_ARN"  # noqa: S105 - a variable name, not a secret
    # Issue 15: signed-in users (service/api/tokens.py): OIDC/JWT bearer tokens from one issuer.
    AUTH_ISSUER = "AUTH_ISSUER"
    AUTH_AUDIENCE = "AUTH_AUDIENCE"
    AUTH_JWKS_URL = "AUTH_JWKS_URL"
    AUTH_ALGORITHMS = "AUTH_ALGORITHMS"
    AUTH_GROUPS_CLAIM = "AUTH_GROUPS_CLAIM"
    AUTH_USER_CLAIM = "AUTH_USER_CLAIM"
    AUTH_GROUP_MAP = "AUTH_GROUP_MAP"
    AUTH_LEEWAY_SECONDS = "AUTH_LEEWAY_SECONDS"
    # The page's sign-in (OIDC authorization code with PKCE, RFC 7636): the issuer's authorize and
    # token endpoints, its logout endpoint (optional), the public app client and the scopes;
    # without the endpoints and the client the page offers "paste a token" only.
    AUTH_AUTHORIZE_URL = "AUTH_AUTHORIZE_URL"
    AUTH_TOKEN_URL = "AUTH_TOKEN_URL"  # noqa: S105 - a variable name, not a secret
    AUTH_LOGOUT_URL = "AUTH_LOGOUT_URL"
    AUTH_CLIENT_ID = "AUTH_CLIENT_ID"
    AUTH_SCOPES = "AUTH_SCOPES"
    # Local only: the data directory's built-in signing key issues development tokens.
    AUTH_DEV_TOKENS = "AUTH_DEV_TOKENS"

    # Powertools reads these two itself.
    POWERTOOLS_SERVICE_NAME = "POWERTOOLS_SERVICE_NAME"
    POWERTOOLS_METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"

    # Post-deploy suite (`python -m pipelines.postdeploy`, issue 6): the deployed API it checks.
    # The bucket, queue, region and endpoint reuse the names above.
    POSTDEPLOY_API_URL = "POSTDEPLOY_API_URL"
    POSTDEPLOY_API_KEY = "POSTDEPLOY_API_KEY"


class Output(StrEnum):
    """Stack-output keys exported by `infra/__main__.py`."""

    API_URL = "apiUrl"
    DOCUMENT_BUCKET = "documentBucket"
    INGEST_QUEUE_URL = "ingestQueueUrl"
    DEAD_LETTER_QUEUE_URL = "deadLetterQueueUrl"
    LEDGER_TABLE = "ledgerTable"
    SEARCH_ENDPOINT = "searchEndpoint"
    DASHBOARD_URL = "dashboardUrl"
    API_KEYS_SECRET_ARN = "apiKeysSecretArn"  # noqa: S105 - an output key, not a secret
    # The generated API key itself, exported as a Pulumi secret (`pulumi stack output --show-secrets`).
    API_KEY = "apiKey"
    ARTIFACT_SHA256 = "artifactSha256"
    # Issue 15: the scoped keys table, its pepper secret, and the sign-in issuer when one is configured.
    KEYS_TABLE = "keysTable"
    API_KEY_PEPPER_SECRET_ARN = "apiKeyPepperSecretArn"  # noqa: S105 - an output key, not a secret
    AUTH_ISSUER = "authIssuer"
    AUTH_CLIENT_ID = "authClientId"


class EnvironmentName(StrEnum):
    """The one environment the code knows by name; a stack's `environment` is free-form."""

    LOCAL = "local"


class SearchBackendName(StrEnum):
    LOCAL = "local"
    OPENSEARCH = "opensearch"
    ELASTICSEARCH = "elasticsearch"


class EmbedderName(StrEnum):
    LOCAL = "local"
    BEDROCK = "bedrock"
    OPENAI = "openai"


class GeneratorName(StrEnum):
    EXTRACTIVE = "extractive"
    BEDROCK = "bedrock"
    OPENAI = "openai"


class LocalVectorIndex(StrEnum):
    EXACT = "exact"
    PROJECTED = "projected"
    HNSW = "hnsw"


class SearchMode(StrEnum):
    BM25 = "bm25"
    VECTOR = "vector"
    HYBRID = "hybrid"


# Header that carries the API key on every protected route.
API_KEY_HEADER = "x-api-key"
# Header that carries the request id in and out of the API.
REQUEST_ID_HEADER = "x-request-id"
# Header CloudFront adds to every origin request when the edge is on; the API refuses
# requests without it, so the default execute-api URL cannot bypass the WAF.
ORIGIN_VERIFY_HEADER = "x-origin-verify"

_STACK_RE = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
# OpenSearch domain names are 3-28 characters
# (https://docs.aws.amazon.com/opensearch-service/latest/developerguide/createupdatedomains.html).
OPENSEARCH_DOMAIN_NAME_MAX = 28
# Hex characters of SHA-256 that end a name too long for its AWS limit.
NAME_HASH_CHARS = 8


def fit_name(name: str, limit: int) -> str:
    """`name` itself when it fits `limit`; else its head, `-`, and 8 hex of the whole name's SHA-256.

    Never a silent cut: cutting `acme-knowledge-platform-staging` to 28 characters would give
    `acme-knowledge-platform-stag`, which a `stag` stack collides with. The suffix is stable
    from run to run and differs for different full names.
    """
    if len(name) <= limit:
        return name
    if limit < 2 * NAME_HASH_CHARS:
        raise ValueError(f"a limit of {limit} leaves no room for a readable head and a hash")
    digest = hashlib.sha256(name.encode()).hexdigest()[:NAME_HASH_CHARS]
    return f"{name[: limit - NAME_HASH_CHARS - 1].rstrip('-')}-{digest}"


@dataclass(frozen=True)
class ResourceNames:
    """Physical names shared by the cloud stack and the local platform."""

    document_bucket: str
    ingest_queue: str
    dead_letter_queue: str
    ledger_table: str
    index_alias: str
    keys_table: str

    @classmethod
    def for_stack(cls, stack: str, account_suffix: str = "") -> ResourceNames:
        """Names for `stack`; `account_suffix` keeps bucket names globally unique in the cloud.

        S3 bucket names are 3-63 lowercase characters, digits, dots or hyphens
        (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html).
        """
        if not _STACK_RE.match(stack):
            raise ValueError(f"stack name {stack!r} must match {_STACK_RE.pattern}")
        prefix = f"{PROJECT}-{stack}"
        bucket = f"{prefix}-documents" + (f"-{account_suffix}" if account_suffix else "")
        return cls(
            document_bucket=fit_name(bucket, 63),
            ingest_queue=f"{prefix}-ingest",
            dead_letter_queue=f"{prefix}-ingest-dlq",
            ledger_table=f"{prefix}-ledger",
            index_alias=f"{PROJECT}-chunks",
            keys_table=f"{prefix}-keys",
        )


# Key schema of the DynamoDB ledger table (infra creates it, the DynamoDB ledger reads it):
# one item per document, plus a status index so listing by status needs no scan.
LEDGER_HASH_KEY = "document_id"
LEDGER_STATUS_ATTRIBUTE = "status"
LEDGER_STATUS_INDEX = "status-index"
LEDGER_WORKSPACE_ATTRIBUTE = "workspace"


# Workspaces and document permissions (issue 15). Objects under `workspaces/<id>/` belong to
# workspace <id>; S3 object metadata (the `x-amz-meta-` headers, read back without the prefix
# in `Metadata`) lists who may read a document, comma-separated.
WORKSPACE_PREFIX = "workspaces/"
ALLOWED_USERS_METADATA = "allowed-users"
ALLOWED_GROUPS_METADATA = "allowed-groups"
# Hash key of the scoped API keys table (infra/components/keys.py, service/api/keys_dynamodb.py).
KEYS_HASH_KEY = "key_id"
# Header that carries a signed-in user's token: `Authorization: Bearer <JWT>` (RFC 6750).
AUTHORIZATION_HEADER = "authorization"
