"""Authenticated, rate-limited retrieval routes: answer, streamed answer, search, documents.

No `from __future__ import annotations` here: each route's `Caller` parameter names the guard
instance of `rag_router`, which FastAPI can only see as an evaluated annotation.
"""

from itertools import chain
from typing import Annotated, Any

from aws_lambda_powertools import Logger
from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from service.access import (
    DEFAULT_WORKSPACE,
    WORKSPACE_ID,
    AccessDenied,
    AccessScope,
    Principal,
    Role,
    authorize,
)
from service.api import sse
from service.api.errors import error_responses, too_long
from service.api.guard import Guard
from service.api.logs import current_request_id
from service.ingest.ledger import Status
from service.models import DocumentStatus, QueryRequest, QueryResponse, SearchRequest, SearchResponse
from service.wiring import Container

PROTECTED_ERRORS = error_responses(400, 401, 403, 413, 422, 429, 500, 503)
STREAM_PATH = "/v1/query/stream"


class EventStreamResponse(StreamingResponse):
    media_type = sse.MEDIA_TYPE


def _event(name: str, description: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "required": ["event", "data"],
        "properties": {
            "event": {"const": name},
            "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": data},
        },
    }


# Before OpenAPI 3.2's `itemSchema`, the `schema` of text/event-stream describes one event
# (as schemathesis reads it): the `data` line is JSON, described by `contentSchema`.
_SSE_EVENT_SCHEMA = {
    "oneOf": [
        _event("token", "A piece of the answer, in order.", {"type": "string"}),
        _event(
            "citations",
            "The sources cited in the answer, by [n].",
            {"type": "array", "items": {"$ref": "#/components/schemas/Citation"}},
        ),
        _event(
            "done",
            "The whole answer and timings; the last event.",
            {"type": "object", "required": ["answer", "mode", "search_mode", "timings_ms"]},
        ),
        _event(
            "error",
            "Generation failed midway; the last event.",
            {"$ref": "#/components/schemas/ErrorResponse"},
        ),
    ]
}

_STREAM_RESPONSES = {
    200: {
        "description": "Server-sent events: `token`... then `citations`, then `done` (or `error`).",
        "content": {sse.MEDIA_TYPE: {"schema": _SSE_EVENT_SCHEMA}},
    },
    **PROTECTED_ERRORS,
}


def scope_for(principal: Principal, workspace: str, needed: Role) -> AccessScope:
    """`authorize`, with a refusal as 403 `forbidden`: never which check failed, so a caller
    cannot tell a workspace it may not use from one that does not exist."""
    try:
        return authorize(principal, workspace, needed)
    except AccessDenied:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "forbidden") from None


def rag_router(container: Container, guard: Guard, logger: Logger) -> APIRouter:
    # FastAPI runs a dependency once per request, so the router's guard and each route's
    # `Principal` parameter are one authentication and one rate-limit token.
    router = APIRouter(dependencies=[Depends(guard)], responses=PROTECTED_ERRORS)
    Caller = Annotated[Principal, Depends(guard)]
    max_chars = container.settings.max_question_chars

    @router.post("/v1/query", tags=["rag"], summary="Answer a question with citations.")
    async def query(body: QueryRequest, principal: Caller) -> QueryResponse:
        scope = scope_for(principal, body.workspace, Role.READER)
        if len(body.question) > max_chars:
            raise too_long("question", max_chars)
        return await run_in_threadpool(container.query_service.answer, body, scope)

    @router.post(
        STREAM_PATH,
        tags=["rag"],
        summary="Answer a question as server-sent events.",
        response_model=None,
        responses=_STREAM_RESPONSES,
    )
    async def query_stream(body: QueryRequest, principal: Caller) -> EventStreamResponse:
        scope = scope_for(principal, body.workspace, Role.READER)
        if len(body.question) > max_chars:
            raise too_long("question", max_chars)
        events = container.query_service.stream(body, scope)
        # Condensing and retrieval happen before the first event: run them now, so a failure
        # there is an ordinary JSON error with its status code, not a broken stream.
        first = await run_in_threadpool(next, events, None)
        head = [first] if first is not None else []
        on_error: dict[str, object] = {"detail": "internal error", "request_id": current_request_id()}
        return EventStreamResponse(
            sse.encode_stream(chain(head, events), on_error, logger), headers=sse.HEADERS
        )

    @router.post("/v1/search", tags=["rag"], summary="Search the indexed passages.")
    async def search(body: SearchRequest, principal: Caller) -> SearchResponse:
        scope = scope_for(principal, body.workspace, Role.READER)
        if len(body.query) > max_chars:
            raise too_long("query", max_chars)
        retrieval = await run_in_threadpool(
            lambda: container.retriever.search(body.query, body.top_k, body.mode, body.filters, scope=scope)
        )
        return SearchResponse(hits=retrieval.hits, mode=retrieval.mode, timings_ms=retrieval.timings_ms)

    @router.get(
        "/v1/documents",
        tags=["documents"],
        summary="Each document's ingestion status in a workspace (writers and admins).",
    )
    def documents(
        principal: Caller,
        state: Annotated[Status | None, Query(description="Only documents in this state.")] = None,
        limit: Annotated[int, Query(ge=1, le=1000, description="At most this many, newest first.")] = 200,
        workspace: Annotated[
            str, Query(pattern=WORKSPACE_ID.pattern, description="The workspace to list.")
        ] = DEFAULT_WORKSPACE,
    ) -> list[DocumentStatus]:
        # The ingestion view lists every document id of the workspace, whatever its readers:
        # it is for those who may ingest and delete there, not for readers.
        scope = scope_for(principal, workspace, Role.WRITER)
        return [
            DocumentStatus(
                document_id=r.document_id,
                status=r.status.value,
                source=r.source,
                chunks=len(r.chunk_ids),
                last_error=r.last_error,
                updated_at=r.updated_at,
            )
            for r in container.ledger.list(state, limit, workspace=scope.workspace)
        ]

    return router


def fix_stream_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """FastAPI lists `application/json` for every 200; the stream route only ever sends SSE."""
    content = schema["paths"][STREAM_PATH]["post"]["responses"]["200"]["content"]
    content.pop("application/json", None)
    return schema
