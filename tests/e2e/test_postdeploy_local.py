"""`make smoke` against the platform `make dev` starts: the post-deploy gate is itself tested here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.platform_file import PlatformInfo, platform_file
from pipelines.postdeploy.cli import DEFAULT_GOLDEN

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _small_golden(directory: Path) -> Path:
    """The shipped golden set with a smaller generated corpus: the local worker ingests one
    document at a time, and 300 would take minutes on a busy two-core machine. The full-size
    gate runs in-process in tests/integration/test_gate_inprocess.py."""
    data = json.loads(DEFAULT_GOLDEN.read_text(encoding="utf-8"))
    data["corpus"] = {**data["corpus"], "documents": 40, "questions": 15}
    path = directory / "golden-small.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize("suite", ["smoke", "gate"])
def test_post_deploy_suite_passes_against_the_local_platform(
    local_platform: PlatformInfo, suite: str, tmp_path: Path
) -> None:
    # Given the running local platform's endpoints and key, as `make dev` writes them
    platform_json = platform_file(Path(local_platform.data_dir))
    extra = ["--golden", str(_small_golden(tmp_path))] if suite == "gate" else ["--reader-key-checks"]
    # When the environment-agnostic suite runs against it, exactly as `make smoke` runs it
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.postdeploy",
            suite,
            "--from-local",
            str(platform_json),
            "--timeout",
            "400",
            "--poll-interval",
            "1",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    # Then every check passes
    assert result.returncode == 0, result.stdout + result.stderr
