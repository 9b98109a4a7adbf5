"""The artifact smoke's second runner: AWS's public Lambda base image, through its runtime interface emulator.

`python -m infra.tools.artifact_smoke --runner lambda-image` starts each function in
`public.ecr.aws/lambda/python:<version of the stacks' lambdaRuntime>` with the unpacked
zip mounted read-only at /var/task, the handler string as the command, and the same
environment the local runner gives it. The image's own runtime (its bootstrap, its
Python, its AWS SDK) imports and invokes the handler; each event is posted to the
emulator's invoke endpoint
(https://docs.aws.amazon.com/lambda/latest/dg/images-test.html). Host networking lets
the function reach the smoke's local servers on 127.0.0.1, and the emulator listen on
the host's port 8080. Needs Docker: CI's build job runs it; this machine has none.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

IMAGE_REPOSITORY = "public.ecr.aws/lambda/python"
EMULATOR_PORT = 8080
INVOKE_PATH = "/2015-03-31/functions/function/invocations"
TASK_ROOT = "/var/task"
# Set by the image itself, or meaningful only to the local runner.
_NOT_PASSED = frozenset({"LAMBDA_TASK_ROOT", "_HANDLER", "PATH", "HOME", "LANG", "TZ"})
_INIT_DURATION = re.compile(r"Init Duration: ([\d.]+) ms")


def image_for(runtime: str) -> str:
    """`python3.12` -> `public.ecr.aws/lambda/python:3.12`."""
    return f"{IMAGE_REPOSITORY}:{runtime.removeprefix('python')}"


def _wait_for_port(port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.2)
    return False


def _invoke(event: Any, timeout: float) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{EMULATOR_PORT}{INVOKE_PATH}", data=json.dumps(event).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return json.loads(response.read() or b"null")


def _is_error(payload: Any) -> bool:
    return isinstance(payload, dict) and "errorType" in payload and "errorMessage" in payload


def _is_init_error(payload: Any) -> bool:
    """The runtime reports a failed init on the first invocation, with a Runtime.* error type."""
    kind = str(payload.get("errorType", "")) if _is_error(payload) else ""
    return kind.startswith("Runtime.") and kind != "Runtime.MarshalError"


def run_in_image(
    image: str,
    handler: str,
    *,
    task_root: Path,
    env: dict[str, str],
    events: list[dict[str, Any]],
    timeout_seconds: int,
    folder: Path,
) -> tuple[dict[str, Any], str]:
    """(result in the local runner's shape, container log) for one cold start handling `events`."""
    env_file = folder / "env.list"
    env_file.write_text(
        "".join(f"{k}={v}\n" for k, v in env.items() if k not in _NOT_PASSED)
        + f"AWS_LAMBDA_FUNCTION_TIMEOUT={timeout_seconds}\n"
    )
    name = f"artifact-smoke-{uuid.uuid4().hex[:8]}"
    command = ["docker", "run", "--detach", "--rm", "--name", name, "--network", "host"]
    command += ["--volume", f"{task_root}:{TASK_ROOT}:ro", "--env-file", str(env_file), image, handler]
    subprocess.run(
        command,
        check=True,
        capture_output=True,
    )
    result: dict[str, Any] = {"init": {}, "invocations": [], "sysPath": None}
    try:
        if not _wait_for_port(EMULATOR_PORT, 30):
            result["init"] = {"error": {"errorType": "Emulator.NotListening", "errorMessage": "no emulator"}}
        for number, item in enumerate(events):
            started = time.perf_counter()
            payload = _invoke(item["event"], timeout_seconds + 15)
            outcome: dict[str, Any] = {"durationMs": round((time.perf_counter() - started) * 1000, 1)}
            if number == 0 and _is_init_error(payload):
                result["init"] = {"error": payload}
                break
            outcome.update({"error": payload} if _is_error(payload) else {"response": payload})
            result["invocations"].append({"name": item["name"], **outcome})
    finally:
        log = subprocess.run(["docker", "logs", name], capture_output=True, text=True, check=False)  # noqa: S607
        subprocess.run(["docker", "stop", name], capture_output=True, check=False)  # noqa: S607
    text = log.stdout + log.stderr
    if "error" not in result["init"]:
        found = _INIT_DURATION.search(text)
        # Without an event there is no REPORT line; the init is then not measured.
        result["init"] = {"durationMs": float(found.group(1)) if found else None}
    return result, text
