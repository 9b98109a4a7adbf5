"""A fork renames the project (`make rename`); infra tests that spell the name in a string pass here
and fail in every fork, as the cloud-options and access tests did. Comments and docstrings may keep it."""

from __future__ import annotations

import io
import tokenize
from pathlib import Path

from service.contract import PROJECT

INFRA_TESTS = Path(__file__).parent


def _literals_naming_the_project(path: Path) -> list[str]:
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)
    # Triple-quoted strings are docstrings: prose, like comments.
    return [
        f"{path.name}:{t.start[0]}"
        for t in tokens
        if t.type == tokenize.STRING and PROJECT in t.string and not t.string.endswith(('"""', "'''"))
    ]


def test_infra_tests_derive_the_project_name_instead_of_spelling_it() -> None:
    # Given every infra test module / Then no string literal spells the project's name
    found = [hit for path in sorted(INFRA_TESTS.glob("*.py")) for hit in _literals_naming_the_project(path)]
    assert found == [], "use service.contract.PROJECT: " + ", ".join(found)
