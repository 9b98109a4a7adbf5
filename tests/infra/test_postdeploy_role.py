"""Issue 15 item 5: the deploy job's post-deploy suite checks a reader key, and its role may.

deploy.yml runs `python -m pipelines.postdeploy smoke --reader-key-checks` with the stack's deploy
role. The suite's AWS requests (pipelines/postdeploy/requests.py, held equal to its real calls by
tests/unit/test_postdeploy_requests.py) are evaluated against that role's real policy, with the
bucket policy and the stack key's policy, for every stack (`make rehearse`: postdeploy-role).
Each guard below is shown to go red when its fix is undone on a copy.
"""

from __future__ import annotations

import copy
import json
import shlex
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from bootstrap import policies
from infra.policy import coverage, suite_coverage
from infra.stacks import stack_names
from infra.tools import rehearse
from infra.tools.offline import ACCOUNT_ID, ResourceRecord, StackRun, run_stack
from pipelines.postdeploy.cli import build_parser
from pipelines.postdeploy.requests import SUITE_REQUESTS
from service.contract import Output
from tests.infra.conftest import PR_STACK, pr_stacks_fit
from tests.workflows.conftest import WORKFLOWS_DIR, load

REGION = "us-east-1"
SUITE = "pipelines.postdeploy"


def run_of(stack: str, request: pytest.FixtureRequest) -> StackRun:
    """The session's run of `stack` where conftest has one, else a run of its own."""
    try:
        run = request.getfixturevalue(stack)
    except pytest.FixtureLookupError:
        return run_stack(stack)
    assert isinstance(run, StackRun)
    return run


@pytest.mark.parametrize("stack", stack_names())
def test_each_deploy_role_may_make_every_request_of_the_suite(
    stack: str, request: pytest.FixtureRequest
) -> None:
    # Given the stack under mocks and its deploy role's real policy
    run = run_of(stack, request)
    # When rehearse evaluates the suite's requests (KMS use and resource policies included)
    verdict = rehearse.check_postdeploy_role(run)
    # Then none is refused, and every declared request was evaluated, each with its key use
    assert verdict.ok, verdict.details
    evaluated = suite_coverage.suite_requests(run, REGION)
    assert {e.serves for e in evaluated} == {*SUITE_REQUESTS, None}
    assert {e.request.action for e in evaluated} >= {"dynamodb:PutItem", "kms:Decrypt"}


@pr_stacks_fit
def test_the_pr_role_may_make_every_request_of_the_suite_on_a_pr_stack(pr_stack: StackRun) -> None:
    # Given a PR stack as ephemeral.yml makes it, and the ephemeral deploy role that runs its smoke
    # When rehearse evaluates the suite's requests (`make rehearse STACK=pr-42`)
    verdict = rehearse.check_postdeploy_role(pr_stack)
    # Then none is refused: the reader-key checks run on PR stacks too
    assert verdict.ok, verdict.details
    assert coverage.deployer_for(PR_STACK).role_name in verdict.summary


@pytest.mark.parametrize("stack", stack_names())
def test_the_preview_role_may_make_none_of_the_suites_requests(
    stack: str, request: pytest.FixtureRequest
) -> None:
    # Given the preview role (pull-request code) and the suite's data reads and writes
    run = run_of(stack, request)
    refused = suite_coverage.suite_gaps(run, coverage.preview_principal(), REGION)
    # Then every single one is refused: it reads no secret, no key item, decrypts no data. (Reading
    # the outputs is not among them: a preview decrypts the config of the stacks it previews.)
    data = [e for e in suite_coverage.suite_requests(run, REGION) if e.serves is not None]
    assert len([g for g in refused if not g.resource.startswith("post-deploy --from-stack")]) == len(data)


def _refusals(run: StackRun) -> list[str]:
    verdict = rehearse.check_postdeploy_role(run)
    assert not verdict.ok
    assert verdict.check == "postdeploy-role"
    return verdict.details


def _without_actions(sids: set[str], drop: str) -> Callable[[policies.Deployer, str], policies.Document]:
    original = policies.deploy_document

    def weakened(deployer: policies.Deployer, account: str) -> policies.Document:
        document = original(deployer, account)
        for statement in document["Statement"]:
            if statement["Sid"] in sids:
                statement["Action"] = [a for a in statement["Action"] if a != drop]
        return document

    return weakened


@pytest.mark.parametrize(
    ("sids", "drop", "names"),
    [
        ({"OwnNamedResources"}, "dynamodb:*", "refused dynamodb:PutItem on arn:aws:dynamodb:"),
        ({"OwnNamedResources"}, "secretsmanager:*", "api-key-pepper"),
        ({"OwnNamedResources"}, "s3:*", "refused s3:PutObject"),
        ({"OwnTaggedResources", "CreateTaggedResources"}, "kms:*", "refused kms:Decrypt"),
    ],
    ids=["keys-table", "pepper-secret", "document-bucket", "stack-key"],
)
def test_a_deploy_role_without_a_needed_grant_fails_rehearse_naming_the_request(
    sids: set[str], drop: str, names: str, staging: StackRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given staging's deploy role with one grant the suite needs removed (on a copy of its policy)
    assert rehearse.check_postdeploy_role(staging).ok
    monkeypatch.setattr(coverage, "deploy_document", _without_actions(sids, drop))
    # Then the postdeploy-role verdict fails, naming the refused request
    assert any(names in detail for detail in _refusals(staging))


def _with_inputs(run: StackRun, type_token: str, change: Callable[[dict[str, Any]], None]) -> StackRun:
    def mutate(record: ResourceRecord) -> ResourceRecord:
        if record.type != type_token:
            return record
        inputs = copy.deepcopy(record.inputs)
        change(inputs)
        return replace(record, inputs=inputs)

    return replace(run, resources=[mutate(r) for r in run.resources])


def test_a_key_policy_that_does_not_let_iam_grant_decrypt_fails_naming_the_key(staging: StackRun) -> None:
    # Given the stack key's policy without decryption for the account (IAM can no longer grant it)
    def no_account_decrypt(inputs: dict[str, Any]) -> None:
        policy = json.loads(inputs["policy"])
        for statement in policy["Statement"]:
            if statement.get("Principal") == {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"}:
                statement["Action"] = [a for a in statement["Action"] if a != "kms:Decrypt"]
        inputs["policy"] = json.dumps(policy)

    run = _with_inputs(staging, "aws:kms/key:Key", no_account_decrypt)
    # Then reading the pepper (and every other decrypt) is refused although the role allows kms:*
    refused = _refusals(run)
    assert any("apiKeyPepperSecretArn: refused kms:Decrypt" in d for d in refused)


def test_a_secrets_key_that_does_not_name_the_deploy_role_fails_naming_the_from_stack_read(
    staging: StackRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given staging's secrets key policy without its deploy role (bootstrap reverted)
    original = policies.secrets_key_users

    def without_deployer(deployer: policies.Deployer, account: str) -> list[str]:
        return [r for r in original(deployer, account) if not r.endswith(f"/{deployer.role_name}")]

    monkeypatch.setattr(policies, "secrets_key_users", without_deployer)
    # Then reading the stack's outputs with --show-secrets is refused, and named
    assert any(d.startswith("post-deploy --from-stack") for d in _refusals(staging))


def test_a_bucket_policy_denying_uploads_fails_naming_the_canary_upload(staging: StackRun) -> None:
    # Given a bucket policy that denies every upload
    def deny_uploads(inputs: dict[str, Any]) -> None:
        policy = json.loads(inputs["policy"])
        policy["Statement"].append(
            {"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": "*"}
        )
        inputs["policy"] = json.dumps(policy)

    run = _with_inputs(staging, "aws:s3/bucketPolicy:BucketPolicy", deny_uploads)
    # Then the canary upload is refused although the role allows s3:* on its bucket
    assert any("refused s3:PutObject" in d for d in _refusals(run))


def test_an_output_the_suite_reads_that_the_stack_no_longer_exports_is_named(staging: StackRun) -> None:
    # Given a stack that stopped exporting its keys table
    run = replace(staging, outputs={k: v for k, v in staging.outputs.items() if k != Output.KEYS_TABLE})
    # Then the verdict names the output the suite cannot find
    assert any(f"stack output {Output.KEYS_TABLE}" in d for d in _refusals(run))


# --- deploy.yml and ephemeral.yml --------------------------------------------------------------
# Every job that deploys a stack runs the smoke with the reader-key checks, after assuming that
# stack's deploy role: main's stacks (deploy.yml) and the per-PR stacks (ephemeral.yml).
SMOKED_JOBS = {"deploy.yml": "deploy", "ephemeral.yml": "deploy-test-destroy"}


def reader_key_smoke_everywhere(workflow: dict[str, Any], job_name: str) -> None:
    """The job's smoke step, run for every stack it deploys with that stack's role, checks a reader key."""
    job = workflow["jobs"][job_name]
    steps = job["steps"]
    role = next(i for i, s in enumerate(steps) if "role-to-assume" in s.get("with", {}))
    smoke = [i for i, s in enumerate(steps) if f"-m {SUITE} smoke" in str(s.get("run", ""))]
    assert len(smoke) == 1, f"the {job_name} job runs one smoke step"
    step = steps[smoke[0]]
    argv = shlex.split(step["run"])
    args = build_parser().parse_args(argv[argv.index(SUITE) + 1 :])
    assert args.suite == "smoke"
    assert args.reader_key_checks, f"the {job_name} job's smoke step must pass --reader-key-checks"
    assert args.from_stack == "$STACK"
    # for every stack of the job, after assuming that stack's deploy role
    assert "if" not in step, "the smoke step (and its reader-key checks) runs for every stack"
    assert role < smoke[0]


def _smoke_steps(workflow: dict[str, Any], job_name: str) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = workflow["jobs"][job_name]["steps"]
    return [s for s in steps if f"-m {SUITE} smoke" in str(s.get("run", ""))]


@pytest.mark.parametrize(("workflow", "job_name"), SMOKED_JOBS.items())
def test_every_deploying_job_checks_a_reader_key_for_every_stack(workflow: str, job_name: str) -> None:
    reader_key_smoke_everywhere(load(WORKFLOWS_DIR / workflow), job_name)


@pytest.mark.parametrize(("workflow", "job_name"), SMOKED_JOBS.items())
@pytest.mark.parametrize(
    "defect",
    [
        lambda run: run.replace(" --reader-key-checks", ""),
        lambda run: run.replace("--reader-key-checks", "--reader-keys-checks"),
    ],
    ids=["flag-dropped", "flag-misspelt"],
)
def test_dropping_the_flag_turns_the_check_red(
    workflow: str, job_name: str, defect: Callable[[str], str]
) -> None:
    # Given a copy of the workflow whose smoke step lost (or misspelt) the flag
    loaded = load(WORKFLOWS_DIR / workflow)
    for step in _smoke_steps(loaded, job_name):
        step["run"] = defect(step["run"])
    # Then the check fails (a misspelt flag is an argparse error, i.e. SystemExit)
    with pytest.raises((AssertionError, SystemExit)):
        reader_key_smoke_everywhere(loaded, job_name)


@pytest.mark.parametrize(("workflow", "job_name"), SMOKED_JOBS.items())
def test_a_smoke_step_limited_to_some_stacks_turns_the_check_red(workflow: str, job_name: str) -> None:
    loaded = load(WORKFLOWS_DIR / workflow)
    for step in _smoke_steps(loaded, job_name):
        step["if"] = "${{ matrix.gate }}"
    with pytest.raises(AssertionError, match="every stack"):
        reader_key_smoke_everywhere(loaded, job_name)
