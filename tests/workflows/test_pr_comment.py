"""The preview workflow's one PR comment, composed by `.github/scripts/pr_comment.py`."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

from tests.workflows.conftest import REPO_ROOT

SCRIPTS = REPO_ROOT / ".github" / "scripts"


def _module() -> ModuleType:
    # As when the workflow runs the script: its own folder is on the path (for preview_changes).
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    path = SCRIPTS / "pr_comment.py"
    spec = importlib.util.spec_from_file_location("pr_comment", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_comment_holds_both_previews_and_the_three_reports(tmp_path: Path) -> None:
    # Given what the preview jobs left behind: prod's preview failed, checkov found something
    (tmp_path / "preview-staging.txt").write_text(
        "+ aws:s3:Bucket documents create\nResources: 1 to create\n"
    )
    (tmp_path / "preview-staging.outcome").write_text("success\n")
    (tmp_path / "preview-prod.txt").write_text("error: config rag-platform:owner missing\n")
    (tmp_path / "preview-prod.outcome").write_text("failure\n")
    (tmp_path / "diff-inventory.txt").write_text("| + | aws:sqs:Queue | ingest |\n")
    (tmp_path / "diff-inventory.rc").write_text("0\n")
    (tmp_path / "security-scan.txt").write_text("Passed checks: 40, Failed checks: 1\n")
    (tmp_path / "security-scan.rc").write_text("1\n")

    # When the comment is composed
    body = _module().compose(tmp_path, "0123456789abcdef")

    # Then the marker comes first, so the workflow finds and updates this comment
    assert body.splitlines()[0] == "<!-- rag-platform:pr-preview -->"
    assert "at 0123456789ab" in body
    # And every section is there with its own status
    assert "pulumi preview --diff (staging)</b>: passed" in body
    assert "pulumi preview --diff (prod)</b>: **failed**" in body
    assert "Resources: 1 to create" in body
    assert "Inventory diff (make diff-inventory)</b>: passed" in body
    assert "Checkov summary (make security-scan)</b>: **failed**" in body
    assert "Failed checks: 1" in body
    # And a report that never ran says so instead of vanishing
    assert "Cost of this PR against its base (make cost)</b>: did not run" in body


def test_comment_stays_under_githubs_limit_and_keeps_the_summary(tmp_path: Path) -> None:
    # Given a preview far larger than a comment may be, whose summary is at the end
    module = _module()
    (tmp_path / "preview-staging.txt").write_text("~ resource\n" * 50_000 + "Resources: 9000 to update\n")
    (tmp_path / "preview-staging.outcome").write_text("success\n")

    # When the comment is composed
    body = module.compose(tmp_path)

    # Then GitHub will accept it, it says it was cut, and the summary survived
    assert len(body) < module.GITHUB_COMMENT_LIMIT
    assert "characters cut" in body
    assert "Resources: 9000 to update" in body


def test_report_text_cannot_close_the_code_fence(tmp_path: Path) -> None:
    # Given a report containing a Markdown fence of its own
    (tmp_path / "cost.txt").write_text("```\n# injected heading\n```\n")
    (tmp_path / "cost.rc").write_text("0\n")

    # When composed / Then the only bare fences are the section's own two
    body = _module().compose(tmp_path)
    cost = body[body.index("Cost of this PR") :]
    assert cost.count("```\n") == 2


def _step(op: str, type_: str, name: str, reasons: list[str] | None = None) -> dict[str, object]:
    urn = f"urn:pulumi:prod::rag-platform::rag:search:SearchCluster${type_}::{name}"
    return {"op": op, "urn": urn, **({"replaceReasons": reasons} if reasons else {})}


def test_comment_leads_with_what_each_stack_replaces_or_deletes(tmp_path: Path) -> None:
    # Given prod's preview replaces the domain (three steps for one URN) and deletes a queue,
    # and staging's changes nothing risky
    domain = "aws:opensearch/domain:Domain"
    prod = {
        "steps": [
            _step("same", "aws:s3/bucket:Bucket", "documents"),
            _step("update", "aws:lambda/function:Function", "api"),
            _step("create-replacement", domain, "search-domain", ["engineVersion"]),
            _step("replace", domain, "search-domain", ["engineVersion", "clusterConfig"]),
            _step("delete-replaced", domain, "search-domain"),
            _step("delete", "aws:sqs/queue:Queue", "old-queue"),
        ]
    }
    (tmp_path / "preview-prod.json").write_text(json.dumps(prod))
    (tmp_path / "preview-prod.outcome").write_text("success\n")
    (tmp_path / "preview-staging.json").write_text(json.dumps({"steps": [_step("create", domain, "d")]}))
    (tmp_path / "preview-staging.outcome").write_text("success\n")
    (tmp_path / "preview-dev.outcome").write_text("failure\n")
    # When the comment is composed
    body = _module().compose(tmp_path)
    # Then before any other section it names each replaced or deleted resource once, with the reasons
    risky = body.split("#### Replaced or deleted", 1)[1].split("<details>", 1)[0]
    assert risky.count("search-domain") == 1
    assert (
        "**replace** `aws:opensearch/domain:Domain` `search-domain` (forced by: clusterConfig, engineVersion)"
        in risky
    )
    assert "**delete** `aws:sqs/queue:Queue` `old-queue`" in risky
    assert "**staging**: nothing is replaced or deleted" in risky
    # And a stack whose preview left no JSON says so: the stacks come from the files, not a fixed list
    assert "**dev**: no preview JSON" in risky
    assert "`api`" not in risky
