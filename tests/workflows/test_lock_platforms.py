"""Issue 17: every CI job installs a lock that has wheels for the platform it runs on.

The build job runs on the Lambda platform (arm64, the runtime's Python 3.12, from the stack
files) so that the artifact smoke imports the very wheels Lambda will. The dev lock cannot
install there: its CPU torch is one cp311 x86_64 wheel. So:

- offline: each job's (runner machine, Python, lock set) comes from the workflow files; any job
  off the developer platform installs only a set declared portable, and no portable lock holds
  a single-platform pin;
- with pip (the ordinary client, hash-checking, dry run): each portable lock finds a hashed wheel
  for every pin on the Lambda platform. This machine's local sources hold cp311 x86_64 wheels
  only (`test_this_machines_local_sources_hold_no_lambda_platform_wheels` states it); pip takes
  those platforms' files from PyPI, whose every file hash `make lock` wrote into the lock.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.tools import lockfile, package

RUNNER_MACHINE = {label: lockfile._MACHINES[arch] for arch, label in package.RUNNERS.items()}
_MAKE = re.compile(r"\bmake\s+(?:-s\s+)?(venv|package|artifact-smoke|test|preflight|rehearse|dev)\b[^\n]*")
_LOCK_SET = re.compile(r"LOCK_SET=(\w+)")


def _resolve(value: str, job: dict[str, Any]) -> list[str]:
    """A runs-on or python-version value, with the expressions CI uses resolved as CI would."""
    platform = package.github_outputs()
    outputs = {"runner": platform["runner"], "python-version": platform["python-version"]}
    match = re.fullmatch(r"\$\{\{\s*needs\.platform\.outputs\.([\w-]+)\s*\}\}", value)
    if match:
        return [outputs[match.group(1)]]
    match = re.fullmatch(r"\$\{\{\s*matrix\.([\w-]+)\s*\}\}", value)
    if match:
        return [str(v) for v in job["strategy"]["matrix"][match.group(1)]]
    return [value]


def job_installs(workflows: dict[str, dict[str, Any]]) -> Iterator[tuple[str, lockfile.Target, str]]:
    """(workflow.job, the platform it runs on, a lock set it installs) for every `make` that installs."""
    for name, workflow in workflows.items():
        for job_id, job in workflow["jobs"].items():
            runs = "\n".join(str(s.get("run", "")) for s in job.get("steps", []))
            sets = {(_LOCK_SET.search(m.group(0)) or ["", "dev"])[1] for m in _MAKE.finditer(runs)}
            if not sets:
                continue
            container = str(job.get("container", {}).get("image", ""))
            setups = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/setup-python@")]
            if container:
                pythons = [re.match(r"python:(\d+\.\d+)", container).group(1)]  # type: ignore[union-attr]
            else:
                (setup,) = setups
                pythons = _resolve(str(setup["with"]["python-version"]), job)
            for runner in _resolve(str(job["runs-on"]), job):
                for python in pythons:
                    for lock_set in sets:
                        yield f"{name}.{job_id}", lockfile.Target(python, RUNNER_MACHINE[runner]), lock_set


def off_developer(workflows: dict[str, dict[str, Any]]) -> set[tuple[str, lockfile.Target, str]]:
    return {(j, t, s) for j, t, s in job_installs(workflows) if t != lockfile.DEVELOPER}


def test_the_build_job_runs_on_the_lambda_platform_with_a_portable_set(
    workflows: dict[str, dict[str, Any]],
) -> None:
    # Given the jobs of every workflow with the platform each runs on
    found = off_developer(workflows)
    # Then the build job is among those off the developer platform, on Lambda's
    assert ("deploy.build", lockfile.lambda_target(), "infra") in found
    # And every job off the developer platform installs a set declared portable to it
    wrong = [
        (j, str(t), s) for j, t, s in found if s not in lockfile.PORTABLE_SETS or t not in lockfile.targets(s)
    ]
    assert wrong == []


@pytest.mark.parametrize("lock_set", lockfile.PORTABLE_SETS)
def test_no_portable_lock_holds_a_single_platform_pin(lock_set: str) -> None:
    # Given a lock a job off the developer platform installs, and this machine's local sources
    sources = lockfile.pip_sources(sys.executable, subprocess.run)
    # Then none of its pins is one platform's build (the dev lock's CPU torch is)
    assert lockfile.single_platform_pins(lock_set, sources) == {}
    assert "torch==2.13.0+cpu" in lockfile.single_platform_pins("dev", sources)


def test_the_check_names_a_single_platform_pin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a portable lock into which the CPU torch (one cp311 x86_64 wheel) was copied
    dev = lockfile.lock_path("dev").read_text(encoding="utf-8")
    (torch,) = [b for b in lockfile.blocks(dev) if b.name == lockfile.TORCH]
    runtime = lockfile.lock_path("runtime").read_text(encoding="utf-8")
    (tmp_path / "runtime.txt").write_text(runtime + torch.text, encoding="utf-8")
    monkeypatch.setattr(lockfile, "LOCK_DIR", tmp_path)
    # Then the offline check names it, with or without the wheel's file at hand
    found = lockfile.single_platform_pins("runtime", lockfile.Sources())
    assert list(found) == ["torch==2.13.0+cpu"]


def test_pip_refusal_is_reported_naming_the_set_the_platform_and_the_pin() -> None:
    # Given pip's answer for a lock without a hashed wheel for the platform
    def pip(command: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        assert "--require-hashes" in command
        assert "--dry-run" in command
        assert command[command.index("--python-version") + 1] == "3.12"
        assert "manylinux2014_aarch64" in command
        error = "ERROR: Could not find a version that satisfies the requirement torch==2.13.0+cpu"
        return subprocess.CompletedProcess(command, 1, "", error)

    # Then the gap names the lock, the platform and the pin
    (gap,) = lockfile.platform_gaps("runtime", lockfile.Target("3.12", "aarch64"), pip)
    assert gap.startswith("locks/runtime.txt on cp312-manylinux-aarch64: ")
    assert "torch==2.13.0+cpu" in gap


@pytest.mark.parametrize("lock_set", lockfile.PORTABLE_SETS)
def test_portable_locks_install_on_the_lambda_platform(lock_set: str) -> None:
    # Given a portable lock and the Lambda platform of the stack files
    target = lockfile.lambda_target()
    # When pip resolves it for that platform in hash-checking mode (dry run, the configured sources)
    gaps = lockfile.platform_gaps(lock_set, target)
    # Then every pin has a wheel whose hash the lock holds
    assert gaps == []


def test_local_sources_are_counted_per_platform(tmp_path: Path) -> None:
    # Given a wheel folder with one x86_64 cp311 wheel, one aarch64 abi3 wheel and a pure one
    for name in (
        "pydantic_core-2.50.5-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "semantic_text_splitter-0.33.1-cp310-abi3-manylinux_2_28_aarch64.whl",
        "idna-3.20-py3-none-any.whl",
    ):
        (tmp_path / name).write_bytes(name.encode())
    sources = lockfile.Sources(find_links=(str(tmp_path),))
    # Then the report's count of local wheels per platform sees each where it belongs
    assert lockfile.local_platform_wheels(sources, lockfile.DEVELOPER) == 1
    assert lockfile.local_platform_wheels(sources, lockfile.Target("3.12", "aarch64")) == 1
    assert lockfile.wheel_platform("idna-3.20-py3-none-any.whl") is None
