"""A stand-in for the Lambda Python runtime's bootstrap, run by `artifact_smoke` in an isolated interpreter.

Standard library only: it runs as `python -I -S artifact_runtime.py ...`, with no site
directories, so the only third-party code it can reach is the unpacked artifact (the
task root, first on the path as in Lambda) and the runtime-provided AWS SDK folder.
What it does mirrors the runtime interface client (github.com/aws/aws-lambda-python-runtime-interface-client,
`awslambdaric/bootstrap.py`):
- the handler string is split at its last dot, the module imported, the attribute
  looked up; failures get the runtime's error types and messages
  (`Runtime.MalformedHandlerName`, `Runtime.ImportModuleError`, `Runtime.HandlerNotFound`);
- the working directory is the task root, and the init phase (import) is timed;
- each event is passed to the handler with a context object shaped like Lambda's, and
  its return value must survive `json.dumps` (else `Runtime.MarshalError`).

Input: a JSON file of `{"name", "event"}` items. Output: a JSON file with the init
result and one result per event. Handler logs go to stdout and stderr, as in Lambda.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import sys
import time
import traceback
import uuid
from typing import Any


class LambdaContext:
    """The attributes and method of the runtime's context object (awslambdaric `LambdaContext`)."""

    def __init__(self, timeout_seconds: int, account: str) -> None:
        env = os.environ
        self.function_name = env["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = env["AWS_LAMBDA_FUNCTION_VERSION"]
        self.memory_limit_in_mb = env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
        self.log_group_name = env["AWS_LAMBDA_LOG_GROUP_NAME"]
        self.log_stream_name = env["AWS_LAMBDA_LOG_STREAM_NAME"]
        self.invoked_function_arn = (
            f"arn:aws:lambda:{env['AWS_REGION']}:{account}:function:{self.function_name}"
        )
        self.aws_request_id = str(uuid.uuid4())
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _error(error_type: str, message: str, exc: BaseException | None = None) -> dict[str, Any]:
    trace = traceback.format_exception(exc) if exc is not None else []
    return {"errorType": error_type, "errorMessage": message, "stackTrace": trace[-6:]}


def load_handler(handler: str) -> Any:
    """Import `module.attr` as the runtime does; raise `_Fault` with the runtime's error on failure."""
    try:
        module_name, attr = handler.rsplit(".", 1)
    except ValueError as exc:
        raise _Fault(_error("Runtime.MalformedHandlerName", f"Bad handler '{handler}': {exc}")) from exc
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as exc:
        raise _Fault(
            _error("Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}", exc)
        ) from exc
    except SyntaxError as exc:
        raise _Fault(
            _error("Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_name}': {exc}", exc)
        ) from exc
    except Exception as exc:
        raise _Fault(_error(type(exc).__name__, str(exc), exc)) from exc
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise _Fault(
            _error("Runtime.HandlerNotFound", f"Handler '{attr}' missing on module '{module_name}'")
        ) from exc


class _Fault(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error["errorMessage"])
        self.error = error


def invoke(function: Any, event: Any, timeout_seconds: int, account: str) -> dict[str, Any]:
    context = LambdaContext(timeout_seconds, account)
    started = time.perf_counter()
    try:
        response = function(event, context)
    except Exception as exc:
        outcome: dict[str, Any] = {"error": _error(type(exc).__name__, str(exc), exc)}
    else:
        try:
            outcome = {"response": json.loads(json.dumps(response))}
        except (TypeError, ValueError) as exc:
            outcome = {"error": _error("Runtime.MarshalError", f"Unable to marshal response: {exc}", exc)}
    outcome["durationMs"] = round((time.perf_counter() - started) * 1000, 1)
    outcome["requestId"] = context.aws_request_id
    return outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--task-root", required=True)
    parser.add_argument("--runtime-dir", action="append", default=[])
    parser.add_argument("--handler", required=True)
    parser.add_argument("--timeout", type=int, required=True)
    parser.add_argument("--account", required=True)
    parser.add_argument("--events", required=True)
    parser.add_argument("--results", required=True)
    args = parser.parse_args()
    # Lambda's order: the function's code first, then what the runtime provides.
    sys.path[:0] = [args.task_root, *args.runtime_dir]
    os.chdir(args.task_root)
    with open(args.events, encoding="utf-8") as source:
        events = json.load(source)
    result: dict[str, Any] = {
        "python": list(sys.version_info[:3]),
        "sysPath": list(sys.path),
        "flags": {"isolated": sys.flags.isolated, "noSite": sys.flags.no_site},
        "invocations": [],
    }
    started = time.perf_counter()
    try:
        function = load_handler(args.handler)
    except _Fault as fault:
        result["init"] = {"error": fault.error}
    else:
        result["init"] = {"durationMs": round((time.perf_counter() - started) * 1000, 1)}
        for item in events:
            result["invocations"].append(
                {"name": item["name"], **invoke(function, item["event"], args.timeout, args.account)}
            )
    # Peak resident memory of this process (kilobytes on Linux), to compare with the function's memory.
    result["maxRssMb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    sys.stdout.flush()
    with open(args.results, "w", encoding="utf-8") as sink:
        json.dump(result, sink, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
