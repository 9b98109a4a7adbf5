"""`make rename NAME=...` (infra/tools/rename.py): the name is rewritten where nothing can read it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from infra.stacks import ROOT, stack_names
from infra.tools.rename import check_name, rename
from service.contract import PROJECT, project_name

# Another name than the project's (the forking test runs this file in a fork named acme-rag).
NEW = "acme-rag" if PROJECT != "acme-rag" else "zeta-rag"
EXAMPLE = "docs/examples/models-bedrock.yaml"


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The files the rename touches, copied from the repository."""
    names = ["Pulumi.yaml", "bootstrap/Pulumi.yaml", "README.md", "infra/tiers.yaml", EXAMPLE]
    names += [f"Pulumi.{stack}.yaml" for stack in stack_names()]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, tmp_path / name)
    return tmp_path


def test_rename_rewrites_the_name_keys_and_docs(copy: Path) -> None:
    # Given a copy named as the repository is
    assert project_name(copy / "Pulumi.yaml") == PROJECT
    # When it is renamed
    changed = rename(NEW, copy)
    # Then Pulumi.yaml names the new project, bootstrap follows, and every stack key has the new prefix
    assert project_name(copy / "Pulumi.yaml") == NEW
    assert f"name: {NEW}-bootstrap" in (copy / "bootstrap" / "Pulumi.yaml").read_text()
    for stack in stack_names(copy):
        text = (copy / f"Pulumi.{stack}.yaml").read_text()
        assert f"{NEW}:tier:" in text
        assert f"{PROJECT}:" not in text
    assert copy / "README.md" in changed
    # and the stack-file snippets of docs/examples/ with them
    assert f"{NEW}:models:" in (copy / EXAMPLE).read_text()
    # And a second run changes nothing
    assert rename(NEW, copy) == []


def test_rename_leaves_longer_words_alone(tmp_path: Path) -> None:
    # Given docs mentioning the name and a longer word that contains it
    (tmp_path / "Pulumi.yaml").write_text(f"name: {PROJECT}\n")
    (tmp_path / "README.md").write_text(f"{PROJECT}, `{PROJECT}:search`, my-{PROJECT}, {PROJECT}x\n")
    # When renamed, Then only the name itself changes
    rename(NEW, tmp_path)
    assert (tmp_path / "README.md").read_text() == f"{NEW}, `{NEW}:search`, my-{PROJECT}, {PROJECT}x\n"


@pytest.mark.parametrize("name", ["Acme", "acme_rag", "-acme", "acme--rag", "a" * 41, ""])
def test_names_resources_cannot_carry_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="lowercase letters, digits and single hyphens"):
        check_name(name)


def test_a_forty_character_name_is_accepted() -> None:
    assert check_name("a" * 40) == "a" * 40
