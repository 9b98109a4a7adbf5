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
    # Given every lock, and the torch release constraints.txt pins
    pinned = lockfile.pins((REPO_ROOT / "constraints.txt").read_text(encoding="utf-8"))[lockfile.TORCH]
    for name in lockfile.SETS:
        pins = lockfile.pins(_lock_text(name))
        # Then none holds a distribution that only CUDA torch pulls in
        assert [p for p in pins if lockfile.CUDA_ONLY.match(p)] == [], name
        # And where torch is locked it is the CPU build of the pinned release: the hashes accept
        # nothing else, so PyPI's CUDA wheel of the same version fails the install
        if lockfile.TORCH in pins:
            assert pins[lockfile.TORCH] == f"{pinned}+cpu", name
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


THIS_MACHINE_PIP_CONFIG = """\
:env:.cert='/etc/ssl/certs/ca-certificates.crt'
:env:.default-timeout='180'
:env:.find-links='/opt/wheels'
global.cert='/etc/ssl/certs/ca-certificates.crt'
global.constraint='/etc/xdg/pip/constraints.txt'
global.extra-index-url='file:///opt/pypi/simple file:///opt/pypi/more'
global.find-links='/opt/wheels'
"""


class _Pip:
    """Records installer invocations; torch is found in the configured sources or not."""

    def __init__(self, torch_in_configured_sources: bool, uv_installs: bool = True) -> None:
        self.torch_here = torch_in_configured_sources
        self.uv_installs = uv_installs
        self.calls: list[list[str]] = []

    def __call__(self, command: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        self.calls.append(command)
        if command[-3:] == ["pip", "config", "list"]:
            return subprocess.CompletedProcess(command, 0, THIS_MACHINE_PIP_CONFIG, "")
        if command[-1] == str(lockfile.INSTALLER_LOCK):
            return subprocess.CompletedProcess(command, 0 if self.uv_installs else 1, "", "no uv wheel")
        is_torch = any(c.endswith("torch.txt") for c in command)
        failed = is_torch and lockfile.TORCH_CPU_INDEX not in command and not self.torch_here
        return subprocess.CompletedProcess(command, 1 if failed else 0, "", "")

    def torch_calls(self) -> list[list[str]]:
        return [c for c in self.calls if any(x.endswith("torch.txt") for x in c)]


def _venv(tmp_path: Path) -> str:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "uv").write_text("", encoding="utf-8")
    return str(tmp_path / "bin" / "python")


def test_pip_configuration_is_read_as_the_sources_to_install_from() -> None:
    # Given this machine's `pip config list` / When parsed / Then every source it names is kept
    sources = lockfile.parse_pip_config(THIS_MACHINE_PIP_CONFIG)
    assert sources.extra_index_urls == ("file:///opt/pypi/simple", "file:///opt/pypi/more")
    assert sources.find_links == ("/opt/wheels",)
    assert sources.index_url is None
    assert sources.cert == "/etc/ssl/certs/ca-certificates.crt"


def test_a_laptop_without_the_cpu_wheel_gets_it_from_the_cpu_index(tmp_path: Path) -> None:
    # Given a Linux machine whose pip sources (PyPI) have only the CUDA torch
    pip = _Pip(torch_in_configured_sources=False)
    # When the dev set is installed
    lockfile.install(_venv(tmp_path), "dev", run=pip, platform="linux")
    # Then uv, bootstrapped from its hash lock, tries the configured sources, then adds the CPU index
    first, second = pip.torch_calls()
    assert first[0].endswith("/bin/uv")
    assert lockfile.TORCH_CPU_INDEX not in first
    assert second[-4:-2] == ["--extra-index-url", lockfile.TORCH_CPU_INDEX]
    # And every uv install is hash-checked and uses the machine's pip sources
    uv_installs = [c for c in pip.calls if c[0].endswith("/bin/uv") and "-r" in c]
    for command in uv_installs:
        assert {"--require-hashes", "--no-deps"} <= set(command)
        assert "/opt/wheels" in command
        assert "file:///opt/pypi/simple" in command
    # And the project comes last, editable, resolving nothing
    assert pip.calls[-1][-4:] == ["--no-deps", "--no-build-isolation", "-e", str(lockfile.ROOT)]


def test_a_machine_whose_sources_hold_the_cpu_wheel_asks_no_other_host(tmp_path: Path) -> None:
    # Given this machine: its wheel folder holds torch 2.13.0+cpu
    pip = _Pip(torch_in_configured_sources=True)
    lockfile.install(_venv(tmp_path), "dev", run=pip, platform="linux")
    # Then the CPU index is never contacted (an unreachable one costs nothing)
    assert all(lockfile.TORCH_CPU_INDEX not in c for c in pip.calls)
    assert len(pip.torch_calls()) == 1


def test_without_uv_pip_installs_the_same_lock(tmp_path: Path) -> None:
    # Given a platform with no uv wheel
    pip = _Pip(torch_in_configured_sources=False, uv_installs=False)
    lockfile.install(_venv(tmp_path), "dev", run=pip, platform="linux")
    # Then pip installs it, hash-checked, with the same torch fallback
    first, second = pip.torch_calls()
    assert first[1:4] == ["-m", "pip", "install"]
    assert lockfile.TORCH_CPU_INDEX in second
    assert all("--require-hashes" in c for c in pip.calls if "-r" in c)


def test_the_installer_lock_pins_uv_by_hash() -> None:
    pins = lockfile.pins(lockfile.INSTALLER_LOCK.read_text(encoding="utf-8"))
    constraints = lockfile.pins((REPO_ROOT / "constraints.txt").read_text(encoding="utf-8"))
    assert pins == {"uv": constraints["uv"]}
    assert "--hash=sha256:" in lockfile.INSTALLER_LOCK.read_text(encoding="utf-8")
