"""The Lambda functions a stack declares, read from its inventory, and the environment Lambda gives each.

Nothing here names a function or a handler: both come from the `aws:lambda/function:Function`
resources of `python -m infra.tools.inventory --stack STACK`, so a function the program
adds is smoked as soon as it exists. How each function is triggered comes from the
inventory too: an SQS event source mapping, an HTTP API integration, or a
`aws:lambda/invocation:Invocation` (a function the program invokes with a fixed input).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from service.contract import Env

FUNCTION = "aws:lambda/function:Function"
EVENT_SOURCE_MAPPING = "aws:lambda/eventSourceMapping:EventSourceMapping"
INTEGRATION = "aws:apigatewayv2/integration:Integration"
INVOCATION = "aws:lambda/invocation:Invocation"

# Keys Lambda sets itself and refuses in a function's configuration
# (https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars-runtime.html).
RESERVED = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
    }
)
# "The total size of all environment variables doesn't exceed 4 KB" and keys start with a
# letter, then letters, digits and underscores
# (https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html).
MAX_ENVIRONMENT_BYTES = 4096
_KEY = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]+$")
# The variables whose value is an endpoint the smoke may point at a local server. Any other
# value reaches the function exactly as the program sets it.
ENDPOINT_VARIABLES = (Env.SEARCH_ENDPOINT.value,)
# The init phase of an on-demand function gets 10 seconds before Lambda retries it within the
# first invocation (https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html).
INIT_LIMIT_SECONDS = 10


@dataclass(frozen=True)
class Trigger:
    kind: str  # "sqs" | "http-api" | "invocation"
    source: str  # queue ARN, API integration name, or the invocation's JSON input
    # The triggering resource's inputs (batch size, response types, payload version, ...).
    settings: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class LambdaFunction:
    resource: str
    name: str
    handler: str
    runtime: str
    architectures: tuple[str, ...]
    memory_mb: int
    timeout_seconds: int
    environment: dict[str, Any]
    log_format: str | None
    triggers: tuple[Trigger, ...] = field(default=())

    def triggered_by(self, kind: str) -> list[Trigger]:
        return [t for t in self.triggers if t.kind == kind]

    def configuration_errors(self) -> list[str]:
        """What Lambda's CreateFunction would refuse in this environment."""
        errors = [f"{key} is reserved by Lambda" for key in sorted(set(self.environment) & RESERVED)]
        errors += [f"{key!r} is not a valid variable name" for key in self.environment if not _KEY.match(key)]
        errors += [
            f"{key} has no string value ({value!r})"
            for key, value in self.environment.items()
            if not isinstance(value, str)
        ]
        size = sum(len(k.encode()) + len(str(v).encode()) for k, v in self.environment.items())
        if size > MAX_ENVIRONMENT_BYTES:
            errors.append(f"environment is {size} bytes, Lambda allows {MAX_ENVIRONMENT_BYTES}")
        return errors


def describe(error: dict[str, Any]) -> str:
    """A runtime error as Lambda logs it: type, message, then the end of the stack trace."""
    return f"{error['errorType']}: {error['errorMessage']}\n{''.join(error.get('stackTrace', []))}"


def _refers_to(reference: Any, function_name: str) -> bool:
    """True when an ARN, invoke ARN or name in another resource's inputs points at `function_name`."""
    text = str(reference or "")
    return text == function_name or text.endswith(f":{function_name}") or f":{function_name}/" in text


def lambda_functions(inventory: dict[str, Any]) -> list[LambdaFunction]:
    resources = inventory["resources"]
    found = []
    for resource in (r for r in resources if r["type"] == FUNCTION):
        inputs = resource["inputs"]
        name = inputs.get("name") or resource["name"]
        triggers = [
            Trigger("sqs", r["inputs"]["eventSourceArn"], r["inputs"])
            for r in resources
            if r["type"] == EVENT_SOURCE_MAPPING
            and _refers_to(r["inputs"].get("functionName"), name)
            and ":sqs:" in str(r["inputs"].get("eventSourceArn"))
        ]
        triggers += [
            Trigger("http-api", r["name"], r["inputs"])
            for r in resources
            if r["type"] == INTEGRATION and _refers_to(r["inputs"].get("integrationUri"), name)
        ]
        triggers += [
            Trigger("invocation", str(r["inputs"].get("input", "{}")))
            for r in resources
            if r["type"] == INVOCATION and _refers_to(r["inputs"].get("functionName"), name)
        ]
        found.append(
            LambdaFunction(
                resource=resource["name"],
                name=name,
                handler=inputs.get("handler", ""),
                runtime=inputs.get("runtime", ""),
                architectures=tuple(inputs.get("architectures") or ["x86_64"]),
                memory_mb=int(inputs.get("memorySize", 128)),
                timeout_seconds=int(inputs.get("timeout", 3)),
                environment=dict((inputs.get("environment") or {}).get("variables") or {}),
                log_format=(inputs.get("loggingConfig") or {}).get("logFormat"),
                triggers=tuple(triggers),
            )
        )
    return found


def order(functions: list[LambdaFunction]) -> list[LambdaFunction]:
    """Invoked-by-the-program functions first (they provision), then consumers, then the API."""
    rank = {"invocation": 0, "sqs": 1, "http-api": 2}

    def key(fn: LambdaFunction) -> tuple[int, str]:
        return (min((rank[t.kind] for t in fn.triggers), default=3), fn.name)

    return sorted(functions, key=key)


def lambda_environment(
    fn: LambdaFunction,
    *,
    region: str,
    task_root: str,
    endpoints: dict[str, str],
    search_url: str,
    credentials: dict[str, str],
    isolation: dict[str, str],
) -> dict[str, str]:
    """Exactly the function's variables, plus what Lambda itself sets, plus endpoint redirects.

    The process environment of the smoke is not inherited: a variable the program forgot
    cannot leak in from the developer's shell.
    """
    env = {key: str(value) for key, value in fn.environment.items()}
    for key in ENDPOINT_VARIABLES:
        if key in env:
            env[key] = search_url
    env.update(
        {
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{fn.runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": fn.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[$LATEST]artifactsmoke",
            "LAMBDA_TASK_ROOT": task_root,
            "_HANDLER": fn.handler,
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            **credentials,
        }
    )
    if fn.log_format:
        env["AWS_LAMBDA_LOG_FORMAT"] = fn.log_format
    env.update(endpoints)
    env.update(isolation)
    return env
