"""`ragctl` workspace options (issue 15): a malformed workspace is refused before anything runs,
naming the option, and the default workspace cannot be deleted."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from pipelines.cli import app


@pytest.mark.parametrize(
    "args",
    [
        ["search", "deploy", "--workspace", "Bad_Id"],
        ["query", "How do I deploy?", "-w", "Bad_Id"],
        ["ingest", "README.md", "-w", "Bad_Id"],
        ["docs", "list", "--workspace", "Bad_Id"],
        ["dlq", "list", "-w", "Bad_Id"],
        ["workspaces", "create", "Bad_Id"],
        ["workspaces", "delete", "Bad_Id", "--yes"],
    ],
)
def test_a_malformed_workspace_exits_2_naming_it(args: list[str]) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "'Bad_Id'" in result.output
    assert "lowercase letters, digits and inner hyphens" in result.output


def test_the_default_workspace_cannot_be_deleted() -> None:
    result = CliRunner().invoke(app, ["workspaces", "delete", "default", "--yes"])
    assert result.exit_code == 2
    assert "cannot be deleted" in result.output
