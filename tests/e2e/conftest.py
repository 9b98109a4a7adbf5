"""The local platform, started once per session exactly as `make dev` starts it, on free ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pipelines.platform_file import PlatformInfo
from service.contract import API_KEY_HEADER, PROJECT

STARTUP_SECONDS = 420


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def local_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformInfo]:
    data_dir = tmp_path_factory.mktemp("platform")
    log = (data_dir / "ragctl-dev.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "dev",
            "--data-dir",
            str(data_dir),
            "--port",
            str(free_port()),
            "--aws-port",
            str(free_port()),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        info = _wait_ready(data_dir, process)
        yield info
    finally:
        # Ctrl-C, as a person would stop it; every child must go with it.
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
            log.close()


def _wait_ready(data_dir: Path, process: subprocess.Popen[bytes]) -> PlatformInfo:
    deadline = time.monotonic() + STARTUP_SECONDS
    log = data_dir / "ragctl-dev.log"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ragctl dev exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        if f"{PROJECT} is ready".encode() in log.read_bytes():
            info = PlatformInfo.load(data_dir)
            assert httpx.get(f"{info.api_url}/ready", timeout=10).status_code == 200
            _wait_for_sample_corpus(info, deadline)
            return info
        time.sleep(0.5)
    raise TimeoutError(f"ragctl dev was not ready in {STARTUP_SECONDS}s:\n{log.read_text()[-4000:]}")


def _wait_for_sample_corpus(info: PlatformInfo, deadline: float) -> None:
    """The bundled documentation is indexed behind "ready"; the tests start once it is in, so
    their own documents never queue behind it."""
    from pipelines.dev import sample_corpus

    expected = len(sample_corpus())
    while time.monotonic() < deadline:
        response = httpx.get(
            f"{info.api_url}/v1/documents", headers={API_KEY_HEADER: info.api_key}, timeout=10
        )
        if sum(d["status"] in ("indexed", "failed") for d in response.json()) >= expected:
            return
        time.sleep(1)
    raise TimeoutError(f"the sample corpus ({expected} documents) was not indexed in time")
