"""Who may see what: the seam between authentication (keys, tokens) and the data path (search, ingest).

Authentication turns a credential into a `Principal`. Every data-path call takes an `AccessScope`,
which only `authorize` builds: the workspace the caller asked for, checked against the principal's
grants, plus the identities that document permissions are matched against. Backends apply the scope
inside their query (never by post-filtering a top-k), so counts, snippets and citations cannot leak.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import IntEnum

DEFAULT_WORKSPACE = "default"
# Workspace ids become S3 key segments (`workspaces/<id>/`) and index filter values, so they are
# kept to a conservative, case-folded alphabet.
WORKSPACE_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# A grant to every workspace (an admin key for operators); never matches a workspace id.
ALL_WORKSPACES = "*"


class Role(IntEnum):
    """Ordered: each role may do everything the roles below it may."""

    READER = 1  # search, query, stream, list documents
    WRITER = 2  # + ingest and delete documents
    ADMIN = 3  # + manage workspaces and keys


class AccessDenied(PermissionError):
    """The principal lacks the role or the workspace; the API maps it to 403 without detail."""


def check_workspace_id(workspace: str) -> str:
    if not WORKSPACE_ID.match(workspace):
        raise ValueError("a workspace id is 1-63 characters: lowercase letters, digits and inner hyphens")
    return workspace


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. `subject` is a key id or a token's `sub`; never the secret itself."""

    subject: str
    role: Role
    workspaces: frozenset[str]
    user: str | None = None
    groups: frozenset[str] = field(default_factory=frozenset)

    def may_use(self, workspace: str) -> bool:
        return ALL_WORKSPACES in self.workspaces or workspace in self.workspaces


@dataclass(frozen=True)
class AccessScope:
    """What one request may read or write: exactly one workspace, and the caller's identities for
    document permissions. A document without permissions is readable by everyone in its workspace."""

    workspace: str
    user: str | None = None
    groups: frozenset[str] = field(default_factory=frozenset)
    # Operators' admin tools (reindex, reconcile) see every document of the workspace.
    bypass_document_permissions: bool = False


def authorize(principal: Principal, workspace: str, needed: Role) -> AccessScope:
    """The only way the API builds an `AccessScope`. Raises `AccessDenied` without saying which check
    failed, so a caller cannot probe for the existence of workspaces."""
    check_workspace_id(workspace)
    if principal.role < needed or not principal.may_use(workspace):
        raise AccessDenied("forbidden")
    return AccessScope(workspace=workspace, user=principal.user, groups=principal.groups)


def operator_scope(workspace: str = DEFAULT_WORKSPACE) -> AccessScope:
    """The scope of local operator tools (ragctl on the platform's own machine)."""
    return AccessScope(workspace=check_workspace_id(workspace), bypass_document_permissions=True)
