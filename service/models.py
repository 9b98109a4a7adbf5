"""Domain and API models shared by ingestion, search, the API and the tests."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.access import DEFAULT_WORKSPACE, check_workspace_id
from service.contract import SearchMode

# OpenSearch/Elasticsearch `terms` queries and bool clauses stay far below their limits
# (65,536 terms, 1,024 clauses) with 100 names a document.
MAX_PRINCIPALS = 100
# A user or group name as indexed: no commas (the S3 metadata separator) and no whitespace
# at the ends; 256 characters covers email addresses and Cognito/Entra group names.
_PRINCIPAL = re.compile(r"^[^,\s](?:[^,]{0,254}[^,\s])?$")


def principal_names(values: tuple[str, ...]) -> tuple[str, ...]:
    if len(values) > MAX_PRINCIPALS:
        raise ValueError(f"at most {MAX_PRINCIPALS} users or groups per document")
    for value in values:
        if not _PRINCIPAL.match(value):
            raise ValueError(f"{value!r} is not a user or group name (1-256 characters, no commas)")
    return tuple(sorted(set(values)))


class Document(BaseModel):
    """A parsed source document, before chunking."""

    model_config = ConfigDict(frozen=True)

    document_id: str = Field(min_length=1, max_length=1024)
    title: str
    text: str
    source: str = Field(description="Where the document came from, e.g. s3://bucket/key.")
    content_type: str = "text/plain"
    tags: tuple[str, ...] = ()
    published: date | None = None
    workspace: str = DEFAULT_WORKSPACE
    allowed_users: tuple[str, ...] = Field((), description="Who may read it; empty: anyone in the workspace.")
    allowed_groups: tuple[str, ...] = Field((), description="Groups that may read it (or the users).")

    _workspace = field_validator("workspace")(check_workspace_id)
    _principals = field_validator("allowed_users", "allowed_groups")(principal_names)


class Chunk(BaseModel):
    """One indexed passage. `chunk_id` is deterministic (see `service.ingest.ids`)."""

    model_config = ConfigDict(frozen=True)

    chunk_id: str
    document_id: str
    position: int = Field(ge=0)
    title: str
    text: str
    source: str
    content_hash: str
    tags: tuple[str, ...] = ()
    published: date | None = None
    workspace: str = DEFAULT_WORKSPACE
    allowed_users: tuple[str, ...] = ()
    allowed_groups: tuple[str, ...] = ()

    @property
    def restricted(self) -> bool:
        """Whether only the listed users and groups may read it (else anyone in the workspace)."""
        return bool(self.allowed_users or self.allowed_groups)

    def stored_fields(self) -> dict[str, Any]:
        """What every search backend stores for a chunk besides its vector and publication date."""
        return {
            "chunk_id": self.chunk_id,
            "document_id": self.document_id,
            "title": self.title,
            "text": self.text,
            "source": self.source,
            "tags": list(self.tags),
            "position": self.position,
            "workspace": self.workspace,
            "allowed_users": list(self.allowed_users),
            "allowed_groups": list(self.allowed_groups),
        }


class EmbeddedChunk(BaseModel):
    model_config = ConfigDict(frozen=True)

    chunk: Chunk
    vector: tuple[float, ...]


# A bare number string ("0") would also be read as a timestamp: only YYYY-MM-DD is a date here.
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")


# Published in the OpenAPI schema, so schema-driven testing (schemathesis) sends them: an
# ordinary question, then stop words alone and punctuation alone, which once made a 500.
_AWKWARD_EXAMPLES = ["How do I deploy to staging?", "to be or not to be?", "is it", "?!…"]


def _text_input(value: str) -> str:
    """Question text must carry something to search for, and be encodable: JSON allows lone
    surrogates (`"\\ud800"`) that no engine or tokenizer accepts."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from error
    if not value.strip():
        raise ValueError("must contain more than whitespace")
    return value


def _date_input(value: object) -> object:
    """Dates come as ISO-8601 strings (`2024-05-01`). Pydantic's lax mode would read a number
    as a Unix timestamp, so `date_to: 0` meant 1970-01-01; a number is refused instead."""
    if value is None or isinstance(value, date) or (isinstance(value, str) and _ISO_DATE.match(value)):
        return value
    raise ValueError("must be a date as an ISO-8601 string, e.g. 2024-05-01")


class SearchFilters(BaseModel):
    """Metadata filters; every given field must match."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str | None = Field(None, max_length=2048, description="Exact source, or a prefix ending in '*'.")
    tags: tuple[str, ...] = Field((), max_length=32, description="Every tag must be present.")
    date_from: date | None = Field(None, description="Earliest publication date, ISO-8601 (2024-05-01).")
    date_to: date | None = Field(None, description="Latest publication date, ISO-8601 (2024-05-01).")

    _dates = field_validator("date_from", "date_to", mode="before")(_date_input)

    @field_validator("tags")
    @classmethod
    def _tag_length(cls, tags: tuple[str, ...]) -> tuple[str, ...]:
        for tag in tags:
            if not 1 <= len(tag) <= 128:
                raise ValueError("each tag must be 1 to 128 characters")
        return tags

    def is_empty(self) -> bool:
        return not (self.source or self.tags or self.date_from or self.date_to)


class SearchHit(BaseModel):
    chunk_id: str
    document_id: str
    title: str
    source: str
    text: str
    snippet: str = Field(description="A passage of the chunk with the query terms marked <mark>...</mark>.")
    score: float
    position: int = 0
    tags: tuple[str, ...] = ()
    published: date | None = None


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, description="The text to search for.", examples=_AWKWARD_EXAMPLES)
    top_k: int = Field(10, ge=1, le=100)
    mode: SearchMode | None = Field(
        None, description="bm25, vector or hybrid; the configured default if absent."
    )
    filters: SearchFilters | None = None
    workspace: str = Field(
        DEFAULT_WORKSPACE,
        description="The workspace to search; the caller's key or token must grant it.",
        examples=[DEFAULT_WORKSPACE],
    )

    _query_text = field_validator("query")(_text_input)
    _workspace = field_validator("workspace")(check_workspace_id)


class SearchResponse(BaseModel):
    hits: list[SearchHit]
    mode: SearchMode
    timings_ms: dict[str, float]


class Turn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: str = Field(min_length=1, max_length=8000)


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, description="The question to answer.", examples=_AWKWARD_EXAMPLES)
    top_k: int = Field(5, ge=1, le=20)
    filters: SearchFilters | None = None
    mode: SearchMode | None = None
    history: list[Turn] = Field(default_factory=list, max_length=20)
    workspace: str = Field(
        DEFAULT_WORKSPACE,
        description="The workspace to search; the caller's key or token must grant it.",
        examples=[DEFAULT_WORKSPACE],
    )

    _question_text = field_validator("question")(_text_input)
    _workspace = field_validator("workspace")(check_workspace_id)


class Citation(BaseModel):
    number: int = Field(ge=1, description="The [n] used in the answer.")
    document_id: str
    chunk_id: str
    title: str
    source: str
    snippet: str
    score: float


class QueryResponse(BaseModel):
    answer: str
    citations: list[Citation]
    mode: str = Field(description="How the answer was made: extractive, bedrock or openai.")
    search_mode: SearchMode
    timings_ms: dict[str, float]


class HealthResponse(BaseModel):
    status: Literal["ok"]
    environment: str
    version: str


class ReadyResponse(BaseModel):
    status: Literal["ready", "not-ready"]
    checks: dict[str, str]


class DocumentStatus(BaseModel):
    document_id: str
    status: str
    source: str | None = None
    chunks: int = 0
    last_error: str | None = None
    updated_at: datetime | None = None


class ErrorBody(BaseModel):
    detail: str | list[dict[str, object]]
    request_id: str | None = None
