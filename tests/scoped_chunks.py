"""Chunks with every kind of access and filter field, and the access rule written out plainly, for
tests that check what the local engine returns to each scope (`mappings.scope_clauses` is the
rule's one definition in code; these tests hold the engine to it)."""

from __future__ import annotations

from datetime import date

from service.access import AccessScope
from service.models import Chunk, SearchFilters


def scoped_chunks(count: int = 120) -> list[Chunk]:
    """Two workspaces (`default`, `acme`), chunks restricted to a user or groups, tags, dates, sources."""
    chunks = []
    for number in range(count):
        workspace = "acme" if number % 6 == 5 else "default"
        chunks.append(
            Chunk(
                chunk_id=f"{workspace}-{number}",
                document_id=f"{workspace}/doc-{number // 4}.md",
                position=number % 4,
                title=f"Note {number}",
                text=f"note {number}",
                source=f"s3://b/{workspace}/doc-{number // 4}.md",
                content_hash="",
                tags=("even",) if number % 2 == 0 else (),
                published=date(2024, 1, 1 + number % 28) if number % 3 else None,
                workspace=workspace,
                allowed_users=("ann",) if number % 11 == 2 else (),
                allowed_groups=("finance",) if number % 7 == 1 else ("legal",) if number % 13 == 3 else (),
            )
        )
    return chunks


def allowed(chunk: Chunk, scope: AccessScope, filters: SearchFilters | None) -> bool:
    """The access rule (`mappings.scope_clauses`) and the filters, written out plainly."""
    readable = chunk.workspace == scope.workspace and (
        scope.bypass_document_permissions
        or not chunk.restricted
        or (scope.user is not None and scope.user in chunk.allowed_users)
        or bool(scope.groups & set(chunk.allowed_groups))
    )
    return readable and (filters is None or matches(chunk, filters))


def matches(chunk: Chunk, filters: SearchFilters) -> bool:
    if filters.source:
        prefix = filters.source.endswith("*")
        if not (chunk.source.startswith(filters.source[:-1]) if prefix else chunk.source == filters.source):
            return False
    day = chunk.published
    in_dates = not (filters.date_from or filters.date_to) or (
        day is not None
        and (filters.date_from is None or day >= filters.date_from)
        and (filters.date_to is None or day <= filters.date_to)
    )
    return in_dates and set(filters.tags) <= set(chunk.tags)
