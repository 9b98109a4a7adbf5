"""Where a workspace's documents live: `workspaces/<id>/...` in the bucket, everything else in `default`.

A document id is its object key (or, for an inline document, the key it would have), so the
workspace is part of the id: the same relative path in two workspaces is two documents, with
chunk ids (derived from the document id, `service.ingest.ids`) that cannot collide either.
"""

from __future__ import annotations

from service.access import DEFAULT_WORKSPACE, check_workspace_id
from service.contract import WORKSPACE_PREFIX


class MalformedWorkspaceKey(ValueError):
    """A key under the workspace prefix whose workspace id or name is not valid."""


def workspace_of(key: str) -> str:
    """The workspace a key (or document id) belongs to; raises `MalformedWorkspaceKey`."""
    if not key.startswith(WORKSPACE_PREFIX):
        return DEFAULT_WORKSPACE
    workspace, _, rest = key[len(WORKSPACE_PREFIX) :].partition("/")
    try:
        check_workspace_id(workspace)
    except ValueError as error:
        raise MalformedWorkspaceKey(f"{key}: workspace id {workspace!r} is malformed: {error}") from None
    if not rest:
        raise MalformedWorkspaceKey(f"{key}: no document name after {WORKSPACE_PREFIX}{workspace}/")
    return workspace


def workspace_prefix(workspace: str) -> str:
    """The key prefix of a workspace's objects; the default workspace has none of its own."""
    check_workspace_id(workspace)
    return "" if workspace == DEFAULT_WORKSPACE else f"{WORKSPACE_PREFIX}{workspace}/"


def document_key(workspace: str, name: str) -> str:
    """The id (and object key) of document `name` in `workspace`."""
    key = workspace_prefix(workspace) + name
    if workspace_of(key) != workspace:
        # A default-workspace name under `workspaces/` would land in another workspace.
        raise MalformedWorkspaceKey(f"{name!r} names a document in another workspace")
    return key
