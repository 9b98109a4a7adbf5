"""Runtime settings: every knob is an environment variable named in `service.contract.Env`.

`Settings()` reads the process environment once and validates it; an invalid
value raises `pydantic.ValidationError`, whose message names the variable.
`load_settings()` turns that into a `SettingsError` with a one-line message per
field, which is what entry points print before exiting.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlparse

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.access import ALL_WORKSPACES, Role, check_workspace_id
from service.api.security_headers import is_connect_source
from service.contract import (
    EmbedderName,
    Env,
    EnvironmentName,
    GeneratorName,
    LocalVectorIndex,
    ResourceNames,
    SearchBackendName,
    SearchMode,
)
from service.search.budget import (
    DEFAULT_ATTEMPT_TIMEOUT_SECONDS,
    DEFAULT_READ_BUDGET_SECONDS,
    MAX_READ_BUDGET_SECONDS,
)

if TYPE_CHECKING:
    from service.search.vector_store import Approximate

# An indexed `dense_vector` holds at most 4096 dimensions in Elasticsearch 8.x
# (https://www.elastic.co/guide/en/elasticsearch/reference/8.17/dense-vector.html, `dims`).
# OpenSearch's Lucene engine takes up to 16,000 (opensearch-project/k-NN#1346), above the 8192
# every backend allows here.
ELASTICSEARCH_MAX_DIMS = 4096
# OpenSearch Serverless endpoints (https://docs.aws.amazon.com/opensearch-service/latest/developerguide/serverless-overview.html).
AOSS_HOST_SUFFIX = ".aoss.amazonaws.com"


# The page asks for these unless AUTH_SCOPES says otherwise (OIDC Core 1.0, section 5.4).
SIGN_IN_SCOPES = ("openid", "email", "profile")
# RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
# Signature algorithms a token may use (RFC 7518, section 3.1): asymmetric only. HMAC ("HS*") is
# refused because a verifier that takes its keys from a public JWKS must never accept a token
# signed with a "secret" an attacker can read (the algorithm-confusion attack), and "none" is
# never a signature.
TOKEN_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
)


class GroupGrant(BaseModel):
    """What one group of the token's groups claim grants: a role in some workspaces."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    workspaces: tuple[str, ...] = Field(min_length=1)
    role: str

    @field_validator("workspaces")
    @classmethod
    def _workspace_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for workspace in value:
            if workspace != ALL_WORKSPACES:
                check_workspace_id(workspace)
        return value

    @field_validator("role")
    @classmethod
    def _role(cls, value: str) -> str:
        if value.upper() not in Role.__members__:
            raise ValueError(f"role must be one of {', '.join(r.name.lower() for r in Role)}")
        return value.lower()

    @property
    def as_role(self) -> Role:
        return Role[self.role.upper()]


def _env(name: Env) -> Any:
    """Bind a field to exactly one contract variable name."""
    return AliasChoices(name.value)


class SettingsError(ValueError):
    """Invalid configuration, with one line per offending variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        extra="ignore",
        populate_by_name=True,
        frozen=True,
        env_ignore_empty=True,
    )

    # Free-form: the stack file's `environment` (infra/config.py); only `local` means the laptop.
    environment: str = Field(
        EnvironmentName.LOCAL.value, pattern=r"^[a-z][a-z0-9-]{0,63}$", validation_alias=_env(Env.ENVIRONMENT)
    )
    stack_name: str = Field("local", validation_alias=_env(Env.STACK_NAME))
    log_level: str = Field("INFO", validation_alias=_env(Env.LOG_LEVEL))
    data_dir: Path = Field(Path(".data"), validation_alias=_env(Env.DATA_DIR))
    aws_region: str = Field("us-east-1", validation_alias=_env(Env.AWS_REGION))
    aws_endpoint_url: str | None = Field(None, validation_alias=_env(Env.AWS_ENDPOINT_URL))

    document_bucket: str | None = Field(None, validation_alias=_env(Env.DOCUMENT_BUCKET))
    ingest_queue_url: str | None = Field(None, validation_alias=_env(Env.INGEST_QUEUE_URL))
    dead_letter_queue_url: str | None = Field(None, validation_alias=_env(Env.DEAD_LETTER_QUEUE_URL))
    ledger_table: str | None = Field(None, validation_alias=_env(Env.LEDGER_TABLE))

    search_backend: SearchBackendName = Field(
        SearchBackendName.LOCAL, validation_alias=_env(Env.SEARCH_BACKEND)
    )
    search_endpoint: str | None = Field(None, validation_alias=_env(Env.SEARCH_ENDPOINT))
    search_index_alias: str | None = Field(None, validation_alias=_env(Env.SEARCH_INDEX_ALIAS))
    search_api_key: SecretStr | None = Field(None, validation_alias=_env(Env.SEARCH_API_KEY))
    local_vector_index: LocalVectorIndex = Field(
        LocalVectorIndex.EXACT, validation_alias=_env(Env.LOCAL_VECTOR_INDEX)
    )
    # Issue 13: in a stack the credentials come from Secrets Manager (service/secrets.py).
    search_credentials_secret_id: str | None = Field(
        None, validation_alias=_env(Env.SEARCH_CREDENTIALS_SECRET_ID)
    )
    # Reads retry throttling inside this budget; its maximum leaves room under API Gateway's 29 s
    # (service/search/budget.py).
    search_read_budget_seconds: float = Field(
        DEFAULT_READ_BUDGET_SECONDS,
        gt=0,
        le=MAX_READ_BUDGET_SECONDS,
        validation_alias=_env(Env.SEARCH_READ_BUDGET_SECONDS),
    )
    search_attempt_timeout_seconds: float = Field(
        DEFAULT_ATTEMPT_TIMEOUT_SECONDS,
        gt=0,
        le=120,
        validation_alias=_env(Env.SEARCH_ATTEMPT_TIMEOUT_SECONDS),
    )
    search_mode: SearchMode = Field(SearchMode.HYBRID, validation_alias=_env(Env.SEARCH_MODE))
    hybrid_alpha: float = Field(0.5, ge=0.0, le=1.0, validation_alias=_env(Env.HYBRID_ALPHA))
    hybrid_candidates: int = Field(100, ge=10, le=1000, validation_alias=_env(Env.HYBRID_CANDIDATES))
    rerank_model_arn: str | None = Field(
        None, pattern=r"^arn:aws[\w-]*:bedrock:", validation_alias=_env(Env.RERANK_MODEL_ARN)
    )
    # Candidates the reranker scores; Bedrock Rerank takes at most 1,000 sources a call
    # (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_agent-runtime_Rerank.html).
    rerank_depth: int = Field(50, ge=1, le=1000, validation_alias=_env(Env.RERANK_DEPTH))
    # Issue 9: the stack's provisioner owns the index (cloud); else this process creates it.
    search_provisioned: bool = Field(False, validation_alias=_env(Env.SEARCH_PROVISIONED))
    # Issue 9: read by the provisioning function only (service.handlers.provision).
    search_replicas: int = Field(0, ge=0, le=10, validation_alias=_env(Env.SEARCH_REPLICAS))
    search_writer_role_arn: str | None = Field(None, validation_alias=_env(Env.SEARCH_WRITER_ROLE_ARN))
    search_reader_role_arn: str | None = Field(None, validation_alias=_env(Env.SEARCH_READER_ROLE_ARN))

    embedder: EmbedderName = Field(EmbedderName.LOCAL, validation_alias=_env(Env.EMBEDDER))
    embedding_model_id: str = Field("all-MiniLM-L6-v2", validation_alias=_env(Env.EMBEDDING_MODEL_ID))
    embedding_dimension: int = Field(384, ge=8, le=8192, validation_alias=_env(Env.EMBEDDING_DIMENSION))
    embedding_batch_size: int = Field(32, ge=1, le=512, validation_alias=_env(Env.EMBEDDING_BATCH_SIZE))
    embedding_concurrency: int = Field(2, ge=1, le=64, validation_alias=_env(Env.EMBEDDING_CONCURRENCY))

    generator: GeneratorName = Field(GeneratorName.EXTRACTIVE, validation_alias=_env(Env.GENERATOR))
    generator_model_id: str | None = Field(None, validation_alias=_env(Env.GENERATOR_MODEL_ID))
    openai_base_url: str | None = Field(None, validation_alias=_env(Env.OPENAI_BASE_URL))
    openai_api_key: SecretStr | None = Field(None, validation_alias=_env(Env.OPENAI_API_KEY))
    openai_api_key_secret_id: str | None = Field(None, validation_alias=_env(Env.OPENAI_API_KEY_SECRET_ID))

    # Characters, as counted by the splitter. 1,000 characters is about 250 MiniLM
    # word pieces, just under the model's 256-token window, so no chunk is truncated.
    chunk_size: int = Field(1000, ge=100, le=20_000, validation_alias=_env(Env.CHUNK_SIZE))
    chunk_overlap: int = Field(150, ge=0, le=5_000, validation_alias=_env(Env.CHUNK_OVERLAP))
    max_document_bytes: int = Field(
        20 * 1024 * 1024, ge=1, le=512 * 1024 * 1024, validation_alias=_env(Env.MAX_DOCUMENT_BYTES)
    )
    retry_budget_seconds: float = Field(20.0, gt=0, le=900, validation_alias=_env(Env.RETRY_BUDGET_SECONDS))
    # Issue 3: large documents are split across messages of at most this many new chunks.
    max_chunks_per_message: int = Field(
        512, ge=1, le=10_000, validation_alias=_env(Env.MAX_CHUNKS_PER_MESSAGE)
    )

    api_keys: Annotated[tuple[SecretStr, ...], NoDecode] = Field((), validation_alias=_env(Env.API_KEYS))
    api_keys_secret_arn: str | None = Field(None, validation_alias=_env(Env.API_KEYS_SECRET_ARN))
    max_question_chars: int = Field(2000, ge=10, le=100_000, validation_alias=_env(Env.MAX_QUESTION_CHARS))
    max_body_bytes: int = Field(
        64 * 1024, ge=1024, le=6 * 1024 * 1024, validation_alias=_env(Env.MAX_BODY_BYTES)
    )
    rate_limit_per_minute: int = Field(
        600, ge=1, le=1_000_000, validation_alias=_env(Env.RATE_LIMIT_PER_MINUTE)
    )
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field((), validation_alias=_env(Env.CORS_ORIGINS))
    origin_verify_secret_arn: str | None = Field(None, validation_alias=_env(Env.ORIGIN_VERIFY_SECRET_ARN))

    # Issue 15: scoped API keys. Without a table, the local platform keeps them in the data directory.
    keys_table: str | None = Field(None, validation_alias=_env(Env.KEYS_TABLE))
    api_key_pepper_secret_arn: str | None = Field(None, validation_alias=_env(Env.API_KEY_PEPPER_SECRET_ARN))
    # Issue 15: signed-in users; tokens are accepted only when an issuer is set.
    auth_issuer: str | None = Field(None, validation_alias=_env(Env.AUTH_ISSUER))
    auth_audience: str | None = Field(None, validation_alias=_env(Env.AUTH_AUDIENCE))
    auth_jwks_url: str | None = Field(None, validation_alias=_env(Env.AUTH_JWKS_URL))
    auth_algorithms: Annotated[tuple[str, ...], NoDecode] = Field(
        ("RS256",), validation_alias=_env(Env.AUTH_ALGORITHMS)
    )
    auth_groups_claim: str = Field("groups", min_length=1, validation_alias=_env(Env.AUTH_GROUPS_CLAIM))
    auth_user_claim: str = Field("sub", min_length=1, validation_alias=_env(Env.AUTH_USER_CLAIM))
    # JSON: {"<group>": {"workspaces": ["<id>", ...], "role": "reader|writer|admin"}}.
    auth_group_map: Annotated[dict[str, GroupGrant], NoDecode] = Field(
        default_factory=dict, validation_alias=_env(Env.AUTH_GROUP_MAP)
    )
    # Clock skew allowed on exp/nbf/iat; RFC 7519 section 4.1.4 suggests "a few minutes" at most.
    auth_leeway_seconds: int = Field(30, ge=0, le=300, validation_alias=_env(Env.AUTH_LEEWAY_SECONDS))
    # The page's sign-in (authorization code + PKCE): endpoints of the issuer and its public client.
    auth_authorize_url: str | None = Field(None, validation_alias=_env(Env.AUTH_AUTHORIZE_URL))
    auth_token_url: str | None = Field(None, validation_alias=_env(Env.AUTH_TOKEN_URL))
    auth_logout_url: str | None = Field(None, validation_alias=_env(Env.AUTH_LOGOUT_URL))
    auth_client_id: str | None = Field(None, validation_alias=_env(Env.AUTH_CLIENT_ID))
    auth_scopes: Annotated[tuple[str, ...], NoDecode] = Field(
        SIGN_IN_SCOPES, validation_alias=_env(Env.AUTH_SCOPES)
    )
    auth_dev_tokens: bool = Field(False, validation_alias=_env(Env.AUTH_DEV_TOKENS))

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(SecretStr(k.strip()) for k in value.split(",") if k.strip())
        return value

    @field_validator("auth_algorithms", mode="before")
    @classmethod
    def _split_algorithms(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(a.strip() for a in value.split(",") if a.strip())
        return value

    @field_validator("auth_algorithms")
    @classmethod
    def _asymmetric_only(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        refused = sorted(set(value) - TOKEN_ALGORITHMS)
        if refused or not value:
            raise ValueError(
                f"{Env.AUTH_ALGORITHMS} may list only {', '.join(sorted(TOKEN_ALGORITHMS))}; "
                f"refused: {refused}"
            )
        return value

    @field_validator("auth_scopes", mode="before")
    @classmethod
    def _split_scopes(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(v for v in value.replace(",", " ").split() if v)
        return value

    @field_validator("auth_scopes")
    @classmethod
    def _openid_scope(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # OIDC Core 1.0, section 3.1.2.1: without `openid` the issuer returns no ID token.
        if "openid" not in value or any(not _SCOPE.fullmatch(v) for v in value):
            raise ValueError(f"{Env.AUTH_SCOPES} must include openid and list scope tokens only")
        return value

    @field_validator("auth_group_map", mode="before")
    @classmethod
    def _parse_group_map(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as error:
                raise ValueError(f"{Env.AUTH_GROUP_MAP} is not JSON: {error.msg}") from None
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(o.strip() for o in value.split(",") if o.strip())
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"{Env.CHUNK_OVERLAP} ({self.chunk_overlap}) must be smaller than "
                f"{Env.CHUNK_SIZE} ({self.chunk_size})"
            )
        if self.search_backend is not SearchBackendName.LOCAL and not self.search_endpoint:
            raise ValueError(
                f"{Env.SEARCH_ENDPOINT} is required when {Env.SEARCH_BACKEND}={self.search_backend}"
            )
        self._check_search_engine()
        if self.generator is GeneratorName.OPENAI and not self.openai_base_url:
            raise ValueError(f"{Env.OPENAI_BASE_URL} is required when {Env.GENERATOR}=openai")
        if self.embedder is EmbedderName.OPENAI and not self.openai_base_url:
            raise ValueError(f"{Env.OPENAI_BASE_URL} is required when {Env.EMBEDDER}=openai")
        if self.generator is GeneratorName.BEDROCK and not self.generator_model_id:
            raise ValueError(f"{Env.GENERATOR_MODEL_ID} is required when {Env.GENERATOR}=bedrock")
        self._check_auth()
        if self.environment != EnvironmentName.LOCAL:
            self._no_local_fallbacks()
        return self

    def _check_auth(self) -> None:
        if self.auth_issuer and not self.auth_audience:
            raise ValueError(f"{Env.AUTH_AUDIENCE} is required when {Env.AUTH_ISSUER} is set")
        if self.auth_dev_tokens and self.environment != EnvironmentName.LOCAL:
            raise ValueError(
                f"{Env.AUTH_DEV_TOKENS} is for the local platform only, "
                f"not {Env.ENVIRONMENT}={self.environment}"
            )
        if self.auth_dev_tokens and not self.auth_issuer:
            raise ValueError(f"{Env.AUTH_ISSUER} is required when {Env.AUTH_DEV_TOKENS} is on")
        if self.auth_issuer and not self.auth_dev_tokens and not self.auth_issuer.startswith("https://"):
            # OIDC Discovery 1.0, section 2: the issuer is an https URL; the JWKS is fetched from it.
            raise ValueError(f"{Env.AUTH_ISSUER} must be an https URL, got {self.auth_issuer!r}")
        self._check_sign_in_page()

    def _check_sign_in_page(self) -> None:
        """The page's code flow needs both endpoints and the client, or none of them. The token
        endpoint goes into the page's Content-Security-Policy, so each URL is checked to be one
        https URL that cannot add a directive or a second source to the policy."""
        endpoints = {
            Env.AUTH_AUTHORIZE_URL: self.auth_authorize_url,
            Env.AUTH_TOKEN_URL: self.auth_token_url,
            Env.AUTH_LOGOUT_URL: self.auth_logout_url,
        }
        for name, url in endpoints.items():
            if url is not None and not is_connect_source(url):
                raise ValueError(f"{name} must be an https URL without spaces, quotes, commas or semicolons")
        page = {
            Env.AUTH_AUTHORIZE_URL: self.auth_authorize_url,
            Env.AUTH_TOKEN_URL: self.auth_token_url,
            Env.AUTH_CLIENT_ID: self.auth_client_id,
        }
        given = [name for name, value in page.items() if value]
        if given and len(given) < len(page):
            missing = sorted(set(page) - set(given))
            raise ValueError(f"{', '.join(missing)} required with {', '.join(given)} (the page's sign-in)")
        if given and not self.auth_issuer:
            raise ValueError(f"{Env.AUTH_ISSUER} is required with {', '.join(given)}")

    @property
    def jwks_url(self) -> str | None:
        """Where the issuer publishes its keys: OIDC Discovery's usual path unless set."""
        if self.auth_jwks_url:
            return self.auth_jwks_url
        return f"{self.auth_issuer.rstrip('/')}/.well-known/jwks.json" if self.auth_issuer else None

    def _no_local_fallbacks(self) -> None:
        """A cloud function that lost a variable must not quietly run on the laptop defaults.

        Every cloud function talks to a cluster; without this it would search an empty local
        index. What only the serving functions need is checked by `require_serving`.
        """
        if self.search_backend is SearchBackendName.LOCAL:
            raise ValueError(
                f"{Env.SEARCH_BACKEND} must name a cluster when {Env.ENVIRONMENT}={self.environment}"
            )

    def require_serving(self) -> Settings:
        """The ingester and the API also need the ledger table and a hosted embedder in the cloud.

        Without them a function would write its ledger to SQLite on a disposable disk, or try to
        import a model the artifact does not carry. The search provisioner needs neither, so
        this is not part of the model's own validation. Raises `SettingsError` naming each.
        """
        if self.environment == EnvironmentName.LOCAL:
            return self
        missing = []
        if not self.ledger_table:
            missing.append(f"{Env.LEDGER_TABLE} is required when {Env.ENVIRONMENT}={self.environment}")
        if self.embedder is EmbedderName.LOCAL:
            missing.append(f"{Env.EMBEDDER} must be a hosted model when {Env.ENVIRONMENT}={self.environment}")
        if missing:
            raise SettingsError("invalid configuration:\n  " + "\n  ".join(missing))
        return self

    def _check_search_engine(self) -> None:
        """Refuse engine settings the engine would refuse later, naming the variable."""
        if (
            self.search_backend is SearchBackendName.ELASTICSEARCH
            and self.embedding_dimension > ELASTICSEARCH_MAX_DIMS
        ):
            raise ValueError(
                f"{Env.EMBEDDING_DIMENSION}={self.embedding_dimension} exceeds the {ELASTICSEARCH_MAX_DIMS} "
                f"dimensions an indexed Elasticsearch dense_vector can hold"
            )
        endpoint = self.search_endpoint or ""
        host = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}").hostname or ""
        if self.search_backend is not SearchBackendName.LOCAL and host.endswith(AOSS_HOST_SUFFIX):
            raise ValueError(
                f"{Env.SEARCH_ENDPOINT}={self.search_endpoint} is an OpenSearch Serverless (aoss) "
                "collection, which is not supported: vector collections assign their own document ids "
                "and accept no refresh, and the idempotent upsert and delete by chunk id rely on both; "
                "use an OpenSearch Service domain (*.es.amazonaws.com) or a self-managed cluster"
            )

    @property
    def resource_names(self) -> ResourceNames:
        return ResourceNames.for_stack(self.stack_name)

    @property
    def local_ann(self) -> Approximate | None:
        """The local engine's approximate k-NN settings, or None for exact k-NN."""
        from service.search.vector_store import approximate_for

        return approximate_for(self.local_vector_index)

    @property
    def index_alias(self) -> str:
        return self.search_index_alias or self.resource_names.index_alias


def describe_errors(error: ValidationError) -> str:
    """One line per invalid field, naming the environment variable."""
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "settings"
        lines.append(f"{where}: {item['msg']}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Read and validate the environment, raising `SettingsError` that names each bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise SettingsError(describe_errors(error)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once (Lambda cold start, API start, CLI start)."""
    return load_settings()
