"""The access seam: only `authorize` builds a scope, and it refuses missing roles and workspaces."""

from __future__ import annotations

import pytest

from service.access import (
    ALL_WORKSPACES,
    AccessDenied,
    Principal,
    Role,
    authorize,
    check_workspace_id,
    operator_scope,
)


def test_a_reader_gets_a_scope_for_its_workspace_with_its_identities() -> None:
    # Given a reader bound to one workspace
    reader = Principal("key-1", Role.READER, frozenset({"acme"}), user="ann", groups=frozenset({"eng"}))
    # When it asks to read that workspace
    scope = authorize(reader, "acme", Role.READER)
    # Then the scope carries the workspace and the identities documents are matched against
    assert (scope.workspace, scope.user, scope.groups) == ("acme", "ann", frozenset({"eng"}))
    assert not scope.bypass_document_permissions


@pytest.mark.parametrize(
    ("role", "workspaces", "workspace", "needed"),
    [
        (Role.READER, {"acme"}, "acme", Role.WRITER),  # role too low
        (Role.ADMIN, {"acme"}, "other", Role.READER),  # workspace not granted
    ],
)
def test_missing_role_or_workspace_is_denied(
    role: Role, workspaces: set[str], workspace: str, needed: Role
) -> None:
    # Given a principal without the role or the workspace / When it asks / Then it is denied
    with pytest.raises(AccessDenied):
        authorize(Principal("k", role, frozenset(workspaces)), workspace, needed)


def test_a_grant_to_all_workspaces_covers_any_workspace() -> None:
    admin = Principal("ops", Role.ADMIN, frozenset({ALL_WORKSPACES}))
    assert authorize(admin, "any-team", Role.ADMIN).workspace == "any-team"


@pytest.mark.parametrize("bad", ["", "UPPER", "-lead", "trail-", "a/b", "x" * 64, "*"])
def test_workspace_ids_outside_the_alphabet_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="workspace id"):
        check_workspace_id(bad)


def test_operator_scope_bypasses_document_permissions_only_for_a_valid_workspace() -> None:
    assert operator_scope("default").bypass_document_permissions
    with pytest.raises(ValueError, match="workspace id"):
        operator_scope("No Such")
