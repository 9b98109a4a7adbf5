"""infra/stacks.py: the stack list and deploy order come from the stack files and infra/tiers.yaml."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from infra.stacks import ROOT, StackListError, deploy_matrix, read_stacks, stack_names
from service.contract import PROJECT


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    for name in ("Pulumi.yaml", "Pulumi.staging.yaml", "Pulumi.prod.yaml", "infra/tiers.yaml"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, tmp_path / name)
    return tmp_path


def _add_stack(root: Path, stack: str, tier: str, extra: str = "") -> None:
    text = (ROOT / "Pulumi.staging.yaml").read_text()
    text = text.replace(f"  {PROJECT}:tier: staging\n", f"  {PROJECT}:tier: {tier}\n{extra}")
    (root / f"Pulumi.{stack}.yaml").write_text(text)


def test_a_new_stack_file_joins_the_list_and_the_deploy_order(repo: Path) -> None:
    # Given a dev stack file and a second staging-tier stack
    _add_stack(repo, "dev", "dev")
    _add_stack(repo, "qa", "staging")
    # Then both are listed, and the order is by tier, then by name
    assert stack_names(repo) == ("dev", "prod", "qa", "staging")
    assert [s.name for s in read_stacks(repo)] == ["dev", "qa", "staging", "prod"]
    matrix = deploy_matrix(repo)["include"]
    assert matrix[0] == {
        "stack": "dev",
        "environment": "dev",
        "role_variable": "AWS_DEPLOY_ROLE_ARN_DEV",
        "gate": True,
    }


def test_an_undeclared_tier_fails_naming_the_file_and_key(repo: Path) -> None:
    _add_stack(repo, "dev", "gold")
    with pytest.raises(StackListError, match=rf"Pulumi.dev.yaml: {PROJECT}:tier is 'gold'"):
        read_stacks(repo)


def test_two_stacks_cannot_share_a_github_environment(repo: Path) -> None:
    # Given a stack claiming prod's GitHub environment (it would share prod's deploy role)
    _add_stack(repo, "dev", "dev", f"  {PROJECT}:githubEnvironment: production\n")
    with pytest.raises(StackListError, match=r"\['production'\] is shared"):
        read_stacks(repo)


def test_the_deploy_order_is_the_tier_order_of_the_tiers_file(repo: Path) -> None:
    # Given the tiers file with prod first (a reordering is a one-line change, in one place)
    tiers = (repo / "infra" / "tiers.yaml").read_text()
    prod = tiers[tiers.index("  - name: prod") :]
    (repo / "infra" / "tiers.yaml").write_text(tiers.replace(prod, "").replace("tiers:\n", f"tiers:\n{prod}"))
    # Then prod deploys first
    assert [s.name for s in read_stacks(repo)] == ["prod", "staging"]
