"""`make smoke` against the platform `make dev` starts: the post-deploy gate is itself tested here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.platform_file import PlatformInfo, platform_file

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.mark.parametrize("suite", ["smoke", "gate"])
def test_post_deploy_suite_passes_against_the_local_platform(
    local_platform: PlatformInfo, suite: str
) -> None:
    # Given the running local platform's endpoints and key, as `make dev` writes them
    platform_json = platform_file(Path(local_platform.data_dir))
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
            "180",
            "--poll-interval",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    # Then every check passes
    assert result.returncode == 0, result.stdout + result.stderr
