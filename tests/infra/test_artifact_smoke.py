"""The artifact smoke (issue 10): it passes on the built zip, and fails naming the cause when the zip
lacks a dependency, when a handler string is misspelled, or when a function lost a variable.

The zip is a host build of the locked versions (this machine's architecture and Python), made
once per session; the staging inventory comes from the session's mocked run of the program.
The failing cases each start only the function they break.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from infra.tools import artifact_smoke, package
from infra.tools.artifact_functions import (
    ENDPOINT_VARIABLES,
    RESERVED,
    LambdaFunction,
    lambda_environment,
    lambda_functions,
)
from infra.tools.artifact_smoke import Check, default_python, prepare
from infra.tools.fake_bedrock import ANSWER_PREFIX, FakeBedrock
from infra.tools.inventory import inventory
from infra.tools.offline import StackRun
from service.contract import Env

FUNCTION = "aws:lambda/function:Function"


@pytest.fixture(scope="session")
def staging_inventory(staging: StackRun) -> dict[str, Any]:
    return inventory("staging", staging)


@pytest.fixture(scope="session")
def host_artifact() -> tuple[Path, list[Path]]:
    artifact, sdk_dirs, _ = prepare(default_python(), None, host_build=True)
    return artifact, sdk_dirs


def _smoke_cli(
    inventory_doc: dict[str, Any], artifact: Path, folder: Path, only: str | None = None
) -> tuple[int, list[Check]]:
    """`python -m infra.tools.artifact_smoke` in its own process, as make and CI run it.

    Its own process because moto keeps its state, and the smoke its S3 patch, per process.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "inventory.json").write_text(json.dumps(inventory_doc))
    command = [sys.executable, "-m", "infra.tools.artifact_smoke", "--stack", "staging"]
    command += ["--inventory", str(folder / "inventory.json"), "--artifact", str(artifact)]
    command += ["--python", default_python(), "--json-report", str(folder / "report.json")]
    command += ["--function", only] if only else []
    process = subprocess.run(command, cwd=package.ROOT, capture_output=True, text=True, check=False)
    report = json.loads((folder / "report.json").read_text())
    checks = [Check(**c) for c in report["stacks"]["staging"]["checks"]]
    return process.returncode, checks


@pytest.fixture(scope="session")
def smoked(
    staging_inventory: dict[str, Any],
    host_artifact: tuple[Path, list[Path]],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[int, list[Check]]:
    return _smoke_cli(staging_inventory, host_artifact[0], tmp_path_factory.mktemp("smoke"))


def _function(inventory_doc: dict[str, Any], handler_module: str) -> dict[str, Any]:
    """The function resource whose handler lives in `handler_module` (how the tests pick one to break)."""
    found: dict[str, Any] = next(
        r
        for r in inventory_doc["resources"]
        if r["type"] == FUNCTION and r["inputs"]["handler"].startswith(handler_module + ".")
    )
    return found


def _failures(checks: list[Check]) -> str:
    return "\n".join(c.line() for c in checks if not c.ok)


# -- what the smoke reads from the inventory -------------------------------------------------


def test_functions_handlers_and_triggers_come_from_the_inventory(staging_inventory: dict[str, Any]) -> None:
    # Given the staging inventory, when the smoke reads its functions
    functions = {fn.name: fn for fn in lambda_functions(staging_inventory)}
    declared = [r for r in staging_inventory["resources"] if r["type"] == FUNCTION]
    # Then there is one per function resource, with the resource's handler and variables
    assert len(functions) == len(declared) >= 2
    for resource in declared:
        fn = functions[resource["inputs"]["name"]]
        assert fn.handler == resource["inputs"]["handler"]
        assert fn.environment == resource["inputs"]["environment"]["variables"]
    # And each is triggered as the program wires it: the ingest queue, the HTTP API, and the
    # provisioner's invocation during `pulumi up`
    kinds = sorted(t.kind for fn in functions.values() for t in fn.triggers)
    assert kinds == ["http-api", "invocation", "sqs"]


def _function_with(env: dict[str, str]) -> LambdaFunction:
    return LambdaFunction(
        resource="f",
        name="fn",
        handler="m.handler",
        runtime="python3.12",
        architectures=("arm64",),
        memory_mb=128,
        timeout_seconds=3,
        environment=env,
        log_format="JSON",
    )


def test_lambda_refuses_reserved_keys_and_oversized_environments() -> None:
    assert _function_with({"AWS_REGION": "eu-west-1"}).configuration_errors() == [
        "AWS_REGION is reserved by Lambda"
    ]
    assert "4096" in " ".join(_function_with({"BIG": "x" * 5000}).configuration_errors())
    assert _function_with({"LOG_LEVEL": "INFO"}).configuration_errors() == []


def test_environment_is_the_functions_own_plus_what_lambda_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a variable in the shell that the program does not set on the function
    monkeypatch.setenv(Env.LEDGER_TABLE, "from-the-developer-shell")
    fn = _function_with({Env.SEARCH_ENDPOINT.value: "https://vpc-x.es.amazonaws.com", "LOG_LEVEL": "INFO"})
    # When the smoke builds the function's environment
    env = lambda_environment(
        fn,
        region="us-east-1",
        task_root="/var/task",
        endpoints={"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:1"},
        search_url="http://127.0.0.1:2",
        credentials={"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b", "AWS_SESSION_TOKEN": "c"},
        isolation={"HOME": "/tmp/home"},
    )
    # Then the shell's variable does not leak in, the endpoint alone is redirected
    assert Env.LEDGER_TABLE not in env
    assert env[Env.SEARCH_ENDPOINT] == "http://127.0.0.1:2"
    assert env["LOG_LEVEL"] == "INFO"
    # And everything added is Lambda's own, an endpoint, or the isolation from this machine
    added = set(env) - set(fn.environment)
    allowed = RESERVED | {"LANG", "TZ", "PATH", "AWS_LAMBDA_LOG_FORMAT", "HOME", "AWS_ENDPOINT_URL_S3"}
    assert added <= allowed, added - allowed
    # And a function without a search endpoint does not get one
    bare = lambda_environment(
        _function_with({}),
        region="us-east-1",
        task_root="/var/task",
        endpoints={},
        search_url="http://127.0.0.1:2",
        credentials={},
        isolation={},
    )
    assert not set(ENDPOINT_VARIABLES) & set(bare)


# -- the runtime stand-in ----------------------------------------------------------------------


@pytest.fixture
def task_root(tmp_path: Path) -> Path:
    root = tmp_path / "task"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "fn.py").write_text(
        "def handler(event, context):\n"
        "    return {'echo': event, 'left': context.get_remaining_time_in_millis() > 0,"
        " 'name': context.function_name}\n"
        "def unmarshalable(event, context):\n    return object()\n"
    )
    (root / "pkg" / "needs_pytest.py").write_text(
        "import pytest\ndef handler(event, context):\n    return 1\n"
    )
    return root


def _run_runtime(task_root: Path, handler: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    events_file, results_file = task_root.parent / "events.json", task_root.parent / "results.json"
    events_file.write_text(json.dumps(events))
    env = {
        "AWS_LAMBDA_FUNCTION_NAME": "fn",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/fn",
        "AWS_LAMBDA_LOG_STREAM_NAME": "s",
        "AWS_REGION": "us-east-1",
    }
    command = [
        default_python(),
        "-I",
        "-S",
        str(artifact_smoke.RUNTIME_SCRIPT),
        "--task-root",
        str(task_root),
    ]
    command += ["--handler", handler, "--timeout", "3", "--account", "123456789012"]
    command += ["--events", str(events_file), "--results", str(results_file)]
    subprocess.run(
        command,
        env=env,
        check=True,
        capture_output=True,
    )
    result: dict[str, Any] = json.loads(results_file.read_text())
    return result


@pytest.mark.parametrize(
    ("handler", "error_type", "message"),
    [
        ("nodots", "Runtime.MalformedHandlerName", "Bad handler 'nodots'"),
        ("pkg.missing.handler", "Runtime.ImportModuleError", "Unable to import module 'pkg.missing'"),
        ("pkg.fn.handlr", "Runtime.HandlerNotFound", "Handler 'handlr' missing on module 'pkg.fn'"),
        # The project's venv has pytest; the isolated interpreter must not see it.
        ("pkg.needs_pytest.handler", "Runtime.ImportModuleError", "No module named 'pytest'"),
    ],
)
def test_runtime_reports_init_failures_as_lambda_does(
    task_root: Path, handler: str, error_type: str, message: str
) -> None:
    result = _run_runtime(task_root, handler, [])
    assert result["init"]["error"]["errorType"] == error_type
    assert message in result["init"]["error"]["errorMessage"]


def test_runtime_invokes_with_a_lambda_shaped_context(task_root: Path) -> None:
    # When the stand-in runtime invokes a handler, and one whose result JSON cannot carry
    result = _run_runtime(task_root, "pkg.fn.handler", [{"name": "a", "event": {"x": 1}}])
    bad = _run_runtime(task_root, "pkg.fn.unmarshalable", [{"name": "b", "event": {}}])
    # Then the handler saw the event and a context with time left and the function's name
    assert result["invocations"][0]["response"] == {"echo": {"x": 1}, "left": True, "name": "fn"}
    assert bad["invocations"][0]["error"]["errorType"] == "Runtime.MarshalError"
    # And nothing but the task root and the standard library was importable
    assert result["flags"] == {"isolated": 1, "noSite": 1}
    assert not [p for p in result["sysPath"] if "site-packages" in p]


# -- the Bedrock fake, through botocore's own parsers -----------------------------------------------


@pytest.fixture
def bedrock() -> Iterator[Any]:
    with FakeBedrock() as fake:
        make: Any = boto3.client
        yield make(
            "bedrock-runtime",
            region_name="us-east-1",
            endpoint_url=fake.url,
            aws_access_key_id="a",
            aws_secret_access_key="b",
            config=Config(retries={"max_attempts": 1}),
        )


def test_fake_bedrock_speaks_titan_converse_and_converse_stream(bedrock: Any) -> None:
    body = {"inputText": "hello", "dimensions": 256, "normalize": True}
    vector = json.loads(
        bedrock.invoke_model(modelId="amazon.titan-embed-text-v2:0", body=json.dumps(body))["body"].read()
    )
    assert len(vector["embedding"]) == 256
    assert abs(sum(x * x for x in vector["embedding"]) - 1) < 1e-6
    messages = [{"role": "user", "content": [{"text": "What is it?"}]}]
    answer = bedrock.converse(modelId="amazon.nova-lite-v1:0", messages=messages)
    assert answer["output"]["message"]["content"][0]["text"].startswith(ANSWER_PREFIX)
    streamed = bedrock.converse_stream(modelId="amazon.nova-lite-v1:0", messages=messages)
    text = "".join(
        e.get("contentBlockDelta", {}).get("delta", {}).get("text", "") for e in streamed["stream"]
    )
    assert text.startswith(ANSWER_PREFIX)


def test_fake_bedrock_refuses_what_bedrock_refuses(bedrock: Any) -> None:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError, match="ValidationException"):
        bedrock.invoke_model(
            modelId="amazon.titan-embed-text-v2:0", body=json.dumps({"inputText": "x", "dimensions": 100})
        )
    with pytest.raises(ClientError, match="ValidationException"):
        bedrock.invoke_model(modelId="cohere.embed-english-v3", body=json.dumps({"texts": ["x"]}))


# -- the whole smoke, and the three ways it must fail -----------------------------------------------


@pytest.mark.slow
def test_smoke_passes_on_the_artifact(
    smoked: tuple[int, list[Check]], staging_inventory: dict[str, Any]
) -> None:
    code, checks = smoked
    assert not _failures(checks), _failures(checks)
    assert code == 0
    # Every function of the inventory was started with its own handler, and got its events
    names = {c.name for c in checks}
    for fn in lambda_functions(staging_inventory):
        assert any(n.startswith("init") and repr(fn.handler) in n for n in names), fn.handler
    assert {
        "main batch: batchItemFailures is empty",
        "stream: 200 and an event stream of tokens from ConverseStream",
        # Issue 15: a scoped key from the keys table (hashed with the pepper secret) works; revoked, not
        "scoped key: 200 and a reader key finds the document",
        "revoked key: 401 and the same body as no key at all",
    } <= names


def _zip_without(source: Path, target: Path, top_level: str) -> Path:
    # Stored, not deflated: only the smoke reads it, and recompressing 70 MB is slow.
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as pruned:
        for info in original.infolist():
            if info.filename.split("/")[0] != top_level:
                pruned.writestr(zipfile.ZipInfo(info.filename, info.date_time), original.read(info))
    return target


@pytest.mark.slow
def test_smoke_fails_naming_a_dependency_left_out(
    tmp_path: Path, staging_inventory: dict[str, Any], host_artifact: tuple[Path, list[Path]]
) -> None:
    # Given the artifact without mangum (which the API handler imports)
    pruned = _zip_without(host_artifact[0], tmp_path / "service.zip", "mangum")
    api = _function(staging_inventory, "service.handlers.api")["inputs"]["name"]
    # When the API function is smoked
    code, checks = _smoke_cli(staging_inventory, pruned, tmp_path / "run", api)
    # Then the smoke fails; the function's init failed, named as Lambda names it
    assert code == 1
    assert "Runtime.ImportModuleError" in _failures(checks)
    assert "No module named 'mangum'" in _failures(checks)


@pytest.mark.slow
def test_smoke_fails_naming_a_misspelled_handler(
    tmp_path: Path, staging_inventory: dict[str, Any], host_artifact: tuple[Path, list[Path]]
) -> None:
    # Given the program declaring the API function with a misspelled handler
    broken = copy.deepcopy(staging_inventory)
    resource = _function(broken, "service.handlers.api")
    resource["inputs"]["handler"] = "service.handlers.api.handlr"
    # When that function is smoked
    code, checks = _smoke_cli(broken, host_artifact[0], tmp_path, resource["inputs"]["name"])
    # Then the smoke fails, naming the handler that is not there
    assert code == 1
    assert "Handler 'handlr' missing on module 'service.handlers.api'" in _failures(checks)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("module", "dropped"),
    # One case keeps `make test` short; the API's settings errors are unit-tested in test_settings.py.
    [("service.handlers.ingest", Env.LEDGER_TABLE)],
)
def test_smoke_fails_naming_a_dropped_variable(
    tmp_path: Path,
    staging_inventory: dict[str, Any],
    host_artifact: tuple[Path, list[Path]],
    module: str,
    dropped: Env,
) -> None:
    # Given the program no longer setting a variable the service needs on one function
    broken = copy.deepcopy(staging_inventory)
    resource = _function(broken, module)
    del resource["inputs"]["environment"]["variables"][dropped.value]
    # When that function is smoked
    code, checks = _smoke_cli(broken, host_artifact[0], tmp_path, resource["inputs"]["name"])
    # Then the smoke fails: the function does not start, and the report names the variable
    assert code == 1
    failures = _failures(checks)
    assert "init" in failures
    assert dropped.value in failures


def test_host_build_reuses_the_zip_only_while_its_inputs_are_unchanged(tmp_path: Path) -> None:
    # Given a zip whose manifest records other inputs
    zip_path = tmp_path / "service.zip"
    zip_path.write_bytes(b"PK")
    zip_path.with_suffix(".manifest.json").write_text(json.dumps({"inputs": "something-else"}))
    platform = ("python3.11.7", "x86_64")
    # Then it is not current; with the present inputs' fingerprint it is
    assert not package.is_current(zip_path, platform)
    pins = package.resolve_lock(*package.target_platform()[:2])
    fingerprint = package.inputs_fingerprint(pins, *platform)
    zip_path.with_suffix(".manifest.json").write_text(json.dumps({"inputs": fingerprint}))
    assert package.is_current(zip_path, platform)


# -- the Lambda base image runner (Docker: CI only), with docker and the emulator faked ---------------


def test_image_runner_turns_the_emulators_answers_into_the_smokes_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from infra.tools import artifact_image

    # Given a Docker that records its commands, and an emulator that answers the events in turn
    commands: list[list[str]] = []

    def docker(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        commands.append(command)
        log = "REPORT RequestId: 1 Init Duration: 812.50 ms Duration: 3.1 ms" if command[1] == "logs" else ""
        return subprocess.CompletedProcess(command, 0, stdout=log, stderr="")

    answers = iter([{"statusCode": 200}, {"errorType": "ValueError", "errorMessage": "bad"}])
    monkeypatch.setattr("infra.tools.artifact_image.subprocess.run", docker)
    monkeypatch.setattr(artifact_image, "_wait_for_port", lambda port, seconds: True)
    monkeypatch.setattr(artifact_image, "_invoke", lambda event, timeout: next(answers))
    events = [{"name": "a", "event": {}}, {"name": "b", "event": {}}]
    # When a function runs in the image
    result, _ = artifact_image.run_in_image(
        "public.ecr.aws/lambda/python:3.12",
        "service.handlers.api.handler",
        task_root=tmp_path,
        env={"LEDGER_TABLE": "t", "_HANDLER": "x"},
        events=events,
        timeout_seconds=29,
        folder=tmp_path,
    )
    # Then the zip is mounted read-only as the task root and the handler is the command
    run = commands[0]
    assert f"{tmp_path}:/var/task:ro" in run
    assert run[-2:] == ["public.ecr.aws/lambda/python:3.12", "service.handlers.api.handler"]
    # And the function's variables reach it, but not those the image sets itself
    env_list = (tmp_path / "env.list").read_text()
    assert "LEDGER_TABLE=t\n" in env_list
    assert "_HANDLER" not in env_list
    # And answers become responses and errors, with the init duration from the REPORT line
    assert result["invocations"][0]["response"] == {"statusCode": 200}
    assert result["invocations"][1]["error"]["errorType"] == "ValueError"
    assert result["init"] == {"durationMs": 812.5}


def test_image_runner_reports_a_failed_init(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from infra.tools import artifact_image

    failure = {"errorType": "Runtime.ImportModuleError", "errorMessage": "No module named 'mangum'"}
    monkeypatch.setattr(
        "infra.tools.artifact_image.subprocess.run",
        lambda command, **_: subprocess.CompletedProcess(command, 0, stdout="", stderr=""),
    )
    monkeypatch.setattr(artifact_image, "_wait_for_port", lambda port, seconds: True)
    monkeypatch.setattr(artifact_image, "_invoke", lambda event, timeout: failure)
    result, _ = artifact_image.run_in_image(
        "img",
        "m.h",
        task_root=tmp_path,
        env={},
        events=[{"name": "a", "event": {}}],
        timeout_seconds=3,
        folder=tmp_path,
    )
    assert result["init"] == {"error": failure}
    assert result["invocations"] == []


def test_image_is_the_stacks_runtime() -> None:
    from infra.tools.artifact_image import image_for

    runtime, _, _ = package.target_platform()
    assert image_for(runtime) == f"public.ecr.aws/lambda/python:{runtime.removeprefix('python')}"


# -- CI: the build job smokes on Lambda's platform and in its image, before the upload -------------------


def test_build_job_runs_on_the_stacks_platform_and_smokes_before_upload() -> None:
    import yaml

    workflow = yaml.safe_load((package.ROOT / ".github" / "workflows" / "deploy.yml").read_text())
    jobs = workflow["jobs"]
    build = jobs["build"]
    # The runner and Python come from the stack files, through the platform job, not literals
    assert build["runs-on"] == "${{ needs.platform.outputs.runner }}"
    setup = next(s for s in build["steps"] if str(s.get("uses", "")).startswith("actions/setup-python"))
    assert setup["with"]["python-version"] == "${{ needs.platform.outputs.python-version }}"
    assert "infra.tools.package --github-output" in json.dumps(jobs["platform"])
    assert package.github_outputs()["runner"] == package.RUNNERS[package.target_platform()[1]]
    # And both smokes run, in order, before the artifact is uploaded
    runs = [str(s.get("run", "")) + str(s.get("uses", "")) for s in build["steps"]]
    local = next(i for i, r in enumerate(runs) if "make package" in r)
    image = next(i for i, r in enumerate(runs) if "--runner lambda-image" in r)
    upload = next(i for i, r in enumerate(runs) if "actions/upload-artifact" in r)
    assert local < image < upload


def test_isolated_means_no_site_directories() -> None:
    # A virtualenv's python keeps its site-packages under -I alone (pytest is importable),
    # which is why the smoke adds -S; the base interpreter with -I -S has none at all.
    venv = subprocess.run([sys.executable, "-I", "-c", "import pytest"], capture_output=True, check=False)
    isolated = subprocess.run(
        [default_python(), "-I", "-S", "-c", "import pytest"], capture_output=True, check=False
    )
    assert venv.returncode == 0
    assert isolated.returncode != 0
    assert b"No module named 'pytest'" in isolated.stderr


def _start_checks(result: dict[str, Any], *, timeout: int = 3, memory: int = 128) -> list[Check]:
    from typing import cast

    from infra.tools.artifact_smoke import Run, Smoke

    fn = LambdaFunction(
        resource="f",
        name="fn",
        handler="m.handler",
        runtime="python3.12",
        architectures=("arm64",),
        memory_mb=memory,
        timeout_seconds=timeout,
        environment={},
        log_format=None,
    )
    smoke_run = Smoke(cast(Any, None), "python", Path("/task"), [], Path("/work"), "us-east-1")
    smoke_run._check_start(Run(fn, result, ""), "test")
    return smoke_run.checks


def test_a_run_over_the_functions_timeout_or_memory_fails() -> None:
    ok: dict[str, Any] = {
        "init": {"durationMs": 5.0},
        "invocations": [{"name": "a", "durationMs": 10.0}],
        "sysPath": ["/task"],
    }
    slow = copy.deepcopy(ok)
    slow["invocations"][0]["durationMs"] = 3500.0
    big = {**ok, "maxRssMb": 300.0}
    assert not _failures(_start_checks({**ok, "maxRssMb": 100.0}))
    assert "a took 3500 ms" in _failures(_start_checks({**slow, "maxRssMb": 100.0}))
    assert "peak resident memory 300 MB" in _failures(_start_checks(big))
