"""Issue 17: hash-locked installs, CPU-only torch on Linux, one `make lock` (infra/tools/lockfile.py)."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra.tools import lockfile
from tests.workflows.conftest import REPO_ROOT


def _lock_text(name: str) -> str:
    return lockfile.lock_path(name).read_text(encoding="utf-8")


def test_every_lock_is_fresh() -> None:
    # Given pyproject.toml, constraints.txt and the committed locks
    # When the staleness check runs (as `make lock-check` does in CI)
    problems = lockfile.check()
    # Then no lock lags behind its inputs
    assert problems == [], "\n".join(problems)


def test_a_moved_pin_makes_the_lock_stale_and_is_named(tmp_path: Path) -> None:
    # Given constraints.txt with one pin moved, as a Dependabot PR or a helper adding a dep would
    constraints = (REPO_ROOT / "constraints.txt").read_text(encoding="utf-8")
    moved = re.sub(r"(?m)^httpx==\S+$", "httpx==0.0.1", constraints)
    assert moved != constraints
    (tmp_path / "constraints.txt").write_text(moved, encoding="utf-8")

    # When the runtime lock is checked against it
    reasons = lockfile.staleness("runtime", constraints=tmp_path / "constraints.txt")

    # Then it is stale, naming the package and both versions
    assert any(r.startswith("httpx: constraints.txt pins 0.0.1, the lock has ") for r in reasons), reasons


def test_a_new_requirement_makes_the_lock_stale_and_is_named(tmp_path: Path) -> None:
    # Given pyproject.toml with a dependency no lock has
    text = (REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8")
    added = text.replace('    "pydantic>=2.7",\n', '    "pydantic>=2.7",\n    "left-pad-nowhere>=1",\n', 1)
    assert added != text
    (tmp_path / "pyproject.toml").write_text(added, encoding="utf-8")

    # When checked / Then it names the missing package
    reasons = lockfile.staleness("runtime", pyproject=tmp_path / "pyproject.toml")
    assert "left-pad-nowhere is required but not locked" in reasons


@pytest.mark.parametrize("name", sorted(lockfile.SETS))
def test_every_pin_of_every_lock_carries_a_hash(name: str) -> None:
    # Given a lock / Then each distribution in it is pinned exactly and has at least one sha256
    blocks = lockfile.blocks(_lock_text(name))
    assert blocks
    unhashed = [b.name for b in blocks if "--hash=sha256:" not in b.text]
    assert unhashed == []
    # And every requirement of its set is in it
    assert lockfile.requirement_names(name) <= {b.name for b in blocks}


def test_one_package_has_one_version_in_every_lock() -> None:
    # Given all locks / Then the subsets agree with the full set (`make lock` constrains them to it)
    full = lockfile.pins(_lock_text(lockfile.FULL_SET))
    for name in lockfile.SETS:
        pins = lockfile.pins(_lock_text(name))
        assert {k: v for k, v in pins.items() if full.get(k) != v} == {}, name


def test_no_lock_can_resolve_a_cuda_build_of_torch() -> None:
    # Given every lock
    for name in lockfile.SETS:
        pins = lockfile.pins(_lock_text(name))
        # Then none holds a distribution that only CUDA torch pulls in
        assert [p for p in pins if lockfile.CUDA_ONLY.match(p)] == [], name
        # And where torch is locked it is the CPU build of the pinned release: the hashes accept
        # nothing else, so PyPI's CUDA wheel of the same version fails the install
        if lockfile.TORCH in pins:
            assert pins[lockfile.TORCH] == "2.13.0+cpu", name
    # And the Lambda runtime set has no torch at all
    assert lockfile.TORCH not in lockfile.pins(_lock_text("runtime"))


def test_a_linux_install_looks_torch_up_on_the_cpu_index_appended_to_pip_config(tmp_path: Path) -> None:
    # Given the dev lock, installed on Linux
    commands = lockfile.install_commands("py", lockfile.lock_path("dev"), tmp_path, platform="linux")

    # Then torch is installed alone, hash-checked, with PyTorch's CPU index as an EXTRA index
    torch, rest, project = commands
    assert torch[torch.index("--extra-index-url") + 1] == lockfile.TORCH_CPU_INDEX
    assert {"--require-hashes", "--no-deps"} <= set(torch)
    torch_file = Path(torch[torch.index("-r") + 1]).read_text(encoding="utf-8")
    assert [b.name for b in lockfile.blocks(torch_file)] == ["torch"]
    # And the machine's own pip configuration is kept: no command replaces or disables its indexes
    for command in commands:
        assert not {"--index-url", "-i", "--no-index", "--isolated"} & set(command)
    # And everything else is the rest of the lock, hash-checked, without the extra index
    assert {"--require-hashes", "--no-deps"} <= set(rest)
    assert "--extra-index-url" not in rest
    rest_file = Path(rest[rest.index("-r") + 1]).read_text(encoding="utf-8")
    locked = {b.name for b in lockfile.blocks(_lock_text("dev"))}
    assert {b.name for b in lockfile.blocks(rest_file)} == locked - {"torch"}
    # And the project itself comes last, without resolving anything
    assert project[-2:] == ["-e", str(lockfile.ROOT)]
    assert "--no-deps" in project


def test_outside_linux_no_extra_index_is_added(tmp_path: Path) -> None:
    commands = lockfile.install_commands("py", lockfile.lock_path("dev"), tmp_path, platform="darwin")
    assert all("--extra-index-url" not in c for c in commands)


def test_this_venv_holds_no_cuda_distribution() -> None:
    # Given the virtualenv `make` installed and that runs these tests
    names = {lockfile.normalize(d.metadata["Name"]) for d in importlib.metadata.distributions()}
    # Then it has no nvidia-* or triton distribution, and torch is the CPU build
    assert sorted(n for n in names if lockfile.CUDA_ONLY.match(n)) == []
    assert importlib.metadata.version("torch").endswith("+cpu")


def _make_dry_run(*args: str) -> str:
    make = shutil.which("make")
    assert make, "make is what the README's two commands run"
    result = subprocess.run(
        [make, "-n", "-B", "venv", "VENV=/nonexistent-venv", f"PY={sys.executable}", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout


def test_make_installs_the_lock_of_the_chosen_set() -> None:
    # Given `make venv` with no flag / Then it installs the full set from its lock
    assert (
        "-m infra.tools.lockfile install --python /nonexistent-venv/bin/python --set dev" in _make_dry_run()
    )
    # And the deploy jobs' `LOCK_SET=infra` installs the infra lock only
    assert "--set infra" in _make_dry_run("LOCK_SET=infra")
    # And nothing in the Makefile installs with pip around the lock
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    main_venv = [line for line in makefile.splitlines() if "$(BIN)/python -m pip install" in line]
    assert main_venv == []


def test_the_runtime_lock_is_one_named_path_for_the_lambda_artifact() -> None:
    # Given the Makefile's RUNTIME_LOCK and the tool's constant / Then they name the same file
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    (line,) = [x for x in makefile.splitlines() if x.startswith("RUNTIME_LOCK :=")]
    assert (
        REPO_ROOT / line.split(":=", 1)[1].strip() == lockfile.RUNTIME_LOCK == lockfile.lock_path("runtime")
    )


class _Pip:
    """Records pip invocations; torch is found in the configured sources or not."""

    def __init__(self, torch_in_configured_sources: bool) -> None:
        self.torch_here = torch_in_configured_sources
        self.calls: list[list[str]] = []

    def __call__(self, command: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        self.calls.append(command)
        is_torch = any(c.endswith("torch.txt") for c in command)
        failed = is_torch and "--extra-index-url" not in command and not self.torch_here
        return subprocess.CompletedProcess(command, 1 if failed else 0, "", "")


def test_a_laptop_without_the_cpu_wheel_gets_it_from_the_cpu_index() -> None:
    # Given a Linux machine whose pip sources (PyPI) have only the CUDA torch
    pip = _Pip(torch_in_configured_sources=False)
    # When the dev set is installed
    lockfile.install("py", "dev", run=pip, platform="linux")
    # Then torch is installed again with PyTorch's CPU index appended, and the rest follows
    torch_calls = [c for c in pip.calls if any(x.endswith("torch.txt") for x in c)]
    assert len(torch_calls) == 2
    assert "--extra-index-url" not in torch_calls[0]
    assert torch_calls[1][torch_calls[1].index("--extra-index-url") + 1] == lockfile.TORCH_CPU_INDEX
    assert len(pip.calls) == 4


def test_a_machine_whose_sources_hold_the_cpu_wheel_asks_no_other_host() -> None:
    # Given this machine: its wheel folder holds torch 2.13.0+cpu
    pip = _Pip(torch_in_configured_sources=True)
    lockfile.install("py", "dev", run=pip, platform="linux")
    # Then the CPU index is never contacted (an unreachable one costs nothing)
    assert all("--extra-index-url" not in c for c in pip.calls)
    assert len(pip.calls) == 3
