"""Issue 9, defect by defect: reverting any one fix turns a check red, naming the cause.

One case per defect of `issues show 9` that can be expressed offline. Each case injects the
defect into a copy (a mutated stack run, workflow set, policy document or stack config) and
runs the check that guards it: a `make rehearse` verdict (infra/tools/rehearse.py), the stack
config loader, or the workflow / stack test that covers it. The check must pass on the copy
without the defect and fail with it, and its failure must name the cause. docs/deploying.md
("Issue 9: each defect and its check") is this table in prose.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from bootstrap import policies
from infra.config import ConfigError, load_stack_config
from infra.tools import rehearse
from infra.tools.offline import ResourceRecord, StackRun
from service.contract import PROJECT, Env
from tests.infra import test_preview_role, test_stacks
from tests.infra.test_config import engine_form, raw_config
from tests.workflows import test_lock_platforms, test_promotion, test_secrets_providers
from tests.workflows.conftest import REPO_ROOT, load, workflow_files

Workflows = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Context:
    staging: StackRun
    prod: StackRun
    workflows: Workflows
    # Undoes every patch a defect makes, after the test.
    monkeypatch: pytest.MonkeyPatch


@dataclass(frozen=True)
class Defect:
    """A defect of issue 9: the check that guards it, with and without the defect injected."""

    id: str
    check: Callable[[Context, bool], None]
    # What the failure must say (a regular expression over the error's text).
    names: str


def _with_record(
    run: StackRun, type_token: str, name: str, change: Callable[[dict[str, Any]], None]
) -> StackRun:
    def mutate(record: ResourceRecord) -> ResourceRecord:
        if record.type == type_token and record.name == name:
            inputs = copy.deepcopy(record.inputs)
            change(inputs)
            return replace(record, inputs=inputs)
        return record

    return replace(run, resources=[mutate(r) for r in run.resources])


def _fail_on(verdict: rehearse.Verdict) -> None:
    assert verdict.ok, f"{verdict.check}: {verdict.summary}: " + " | ".join(verdict.details)


# --- "Every preview fails", "Staging's cluster stays yellow": the stack config -----------------------
def missing_required_key(ctx: Context, inject: bool) -> None:
    raw = raw_config("staging")
    if inject:
        del raw[f"{PROJECT}:owner"]
    load_stack_config("staging", engine_form(raw))


def replicas_on_one_node(ctx: Context, inject: bool) -> None:
    raw = raw_config("staging")
    if inject:
        raw[f"{PROJECT}:search"] = {**raw[f"{PROJECT}:search"], "instanceCount": 1, "replicas": 1}
    load_stack_config("staging", engine_form(raw))


# --- "The first CI deploy fails with AccessDenied", "Deploy roles can escalate": rehearse ----------
def auto_named_role(ctx: Context, inject: bool) -> None:
    run = ctx.staging
    if inject:
        run = _with_record(run, test_stacks.ROLE, "network-flow-logs-role", lambda i: i.pop("name"))
    _fail_on(rehearse.check_deploy_roles(run))


def missing_boundary(ctx: Context, inject: bool) -> None:
    run = ctx.staging
    if inject:
        run = _with_record(run, test_stacks.ROLE, "api-role", lambda i: i.pop("permissionsBoundary"))
    _fail_on(rehearse.check_policy_pack(run))


def deploy_role_escalates(ctx: Context, inject: bool) -> None:
    from infra.policy import coverage
    from tests.infra import test_deploy_roles

    staging = next(d for d in policies.DEPLOYERS if d.stacks == "staging")
    original = policies.deploy_document

    def before_the_fix(deployer: policies.Deployer, account: str) -> policies.Document:
        # `iam:*Role*` on every `rag-platform-*` role, and no guard statements
        document = original(deployer, account)
        guards = {g["Sid"] for g in policies.guard_statements(account)}
        document["Statement"] = [s for s in document["Statement"] if s["Sid"] not in guards]
        document["Statement"].append(
            {
                "Effect": "Allow",
                "Action": ["iam:*Role*"],
                "Resource": [f"arn:aws:iam::{account}:role/{PROJECT}-*"],
            }
        )
        return document

    if inject:
        ctx.monkeypatch.setattr(coverage, "deploy_document", before_the_fix)
    test_deploy_roles.test_staging_and_pr_roles_cannot_reach_prod_or_widen_themselves(staging)


# --- "A new stack's API answers 403", "More security gaps": the program's resources ------------------
def api_role_writes(ctx: Context, inject: bool) -> None:
    run = ctx.staging

    def widen(inputs: dict[str, Any]) -> None:
        document = test_stacks.policy(inputs)
        for statement in document["Statement"]:
            if "es:ESHttpPost" in statement["Action"]:
                statement["Action"] = [*statement["Action"], "es:ESHttpPut"]
        inputs["policy"] = json.dumps(document)

    if inject:
        run = _with_record(run, "aws:iam/rolePolicy:RolePolicy", "api-policy", widen)
    test_stacks.test_api_role_can_only_read_the_alias(run)


def ingester_is_master_user(ctx: Context, inject: bool) -> None:
    run = ctx.prod
    ingester = test_stacks.role_arn(run, "ingester")

    def master(inputs: dict[str, Any]) -> None:
        inputs["advancedSecurityOptions"]["masterUserOptions"]["masterUserArn"] = ingester

    if inject:
        run = _with_record(run, test_stacks.DOMAIN, run.one(test_stacks.DOMAIN).name, master)
    test_stacks.test_master_user_is_the_provisioner_not_the_ingester(run)


def domain_policy_every_verb(ctx: Context, inject: bool) -> None:
    run = ctx.staging

    def every_verb(inputs: dict[str, Any]) -> None:
        document = test_stacks.policy(inputs, "accessPolicies")
        for statement in document["Statement"]:
            statement["Action"] = list(test_stacks.ALL_HTTP_VERBS)
        inputs["accessPolicies"] = json.dumps(document)

    if inject:
        run = _with_record(run, test_stacks.DOMAIN, run.one(test_stacks.DOMAIN).name, every_verb)
    request = _FixtureRequest({"staging": run})
    test_stacks.test_search_access_is_per_role_and_no_role_gets_every_verb("staging", request)  # type: ignore[arg-type]


def waf_bypass(ctx: Context, inject: bool) -> None:
    run = ctx.prod
    if inject:
        # The API no longer checks CloudFront's origin secret: the execute-api URL answers directly.
        run = _with_record(
            run,
            test_stacks.FUNCTION,
            "api-function",
            lambda i: i["environment"]["variables"].pop(Env.ORIGIN_VERIFY_SECRET_ARN),
        )
    test_stacks.test_api_behind_the_edge_refuses_requests_that_bypass_it(run, ctx.staging)


def no_provisioning_during_up(ctx: Context, inject: bool) -> None:
    run = ctx.staging
    if inject:
        # Role mapping and index creation left to a manual step: no Invocation during `pulumi up`.
        run = replace(run, resources=[r for r in run.resources if r.type != test_stacks.INVOCATION])
    request = _FixtureRequest({"staging": run})
    test_stacks.test_provisioner_runs_during_up_with_the_stack_replicas("staging", "0", request)  # type: ignore[arg-type]


def preview_read_only_access(ctx: Context, inject: bool) -> None:
    if inject:
        read_only = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["s3:Get*", "dynamodb:*", "secretsmanager:Get*"],
                    "Resource": "*",
                }
            ],
        }
        ctx.monkeypatch.setattr(policies, "preview_document", lambda *a, **k: read_only)
    test_preview_role.test_the_preview_role_cannot_read_an_object_an_item_or_a_secret("prod")


def preview_decrypts_prod(ctx: Context, inject: bool) -> None:
    prod = next(d for d in policies.DEPLOYERS if d.stacks == "prod")
    original = policies.secrets_key_users

    def prod_key_names_the_preview_role(deployer: policies.Deployer, account: str) -> list[str]:
        return [*original(deployer, account), policies.role_arn(account, policies.PREVIEW_ROLE_NAME)]

    if inject:
        ctx.monkeypatch.setattr(policies, "secrets_key_users", prod_key_names_the_preview_role)
    test_preview_role.test_the_preview_role_decrypts_staging_but_never_prod()
    test_preview_role.test_only_the_roles_a_key_policy_names_decrypt_that_stacks_secrets(prod)


# --- "Workflow gaps": the workflow checks over a mutated copy of .github/workflows ------------------
def _workflow_check(
    check: Callable[[Workflows], None], mutate: Callable[[Workflows], None]
) -> Callable[[Context, bool], None]:
    def run(ctx: Context, inject: bool) -> None:
        workflows = copy.deepcopy(ctx.workflows)
        if inject:
            mutate(workflows)
        check(workflows)

    return run


def _job(workflows: Workflows, name: str, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = workflows[name]["jobs"][job_id]
    return job


def _step(job: dict[str, Any], predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    return next(s for s in job["steps"] if predicate(s))


def _is_up(step: dict[str, Any]) -> bool:
    return bool(step.get("with", {}).get("command") == "up")


def _without(name: str, job_id: str | None = None) -> Callable[[Workflows], None]:
    def remove(w: Workflows) -> None:
        if job_id is None:
            del w[name]
        else:
            del w[name]["jobs"][job_id]

    return remove


def _drop_ci_green(w: Workflows) -> None:
    # Both roots of the deploy chain: the build's platform job and the deploy order's job.
    _job(w, "deploy", "platform")["needs"] = []
    _job(w, "deploy", "order")["needs"] = []


def _cuda_torch(w: Workflows) -> None:
    _job(w, "deploy", "deploy")["env"]["PIP_EXTRA_INDEX_URL"] = "https://download.pytorch.org/whl/cu121"


def _build_on_dev_lock(w: Workflows) -> None:
    step = _step(_job(w, "deploy", "build"), lambda s: "make package" in str(s.get("run", "")))
    step["run"] = step["run"].replace(" LOCK_SET=infra", "")


def _no_policy_pack(w: Workflows) -> None:
    _step(_job(w, "deploy", "deploy"), _is_up)["with"].pop("policyPacks")


def _preview_in_env_var(w: Workflows) -> None:
    step = _step(_job(w, "preview", "pulumi-preview"), lambda s: "pulumi preview" in str(s.get("run", "")))
    step["run"] = step["run"].replace('> "reports/preview-$STACK.txt" 2>&1', "")


def _unpinned_cli(w: Workflows) -> None:
    _step(_job(w, "deploy", "deploy"), _is_up)["with"].pop("pulumi-version-file")


def _cleanup_on_merge_ref(w: Workflows) -> None:
    _step(_job(w, "ephemeral", "cleanup"), lambda s: str(s.get("uses", "")).startswith("actions/checkout@"))[
        "with"
    ].pop("ref")


def _no_refresh(w: Workflows) -> None:
    _step(_job(w, "deploy", "deploy"), _is_up)["with"]["refresh"] = False


def _no_preflight(w: Workflows) -> None:
    job = _job(w, "deploy", "deploy")
    job["steps"] = [s for s in job["steps"] if "make preflight" not in str(s.get("run", ""))]


def _preview_gets_passphrase(w: Workflows) -> None:
    _job(w, "preview", "pulumi-preview")["env"]["PULUMI_CONFIG_PASSPHRASE"] = (
        "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"
    )


def _prod_previewed_on_prs(w: Workflows) -> None:
    step = _step(_job(w, "preview", "stacks"), lambda s: "stacks.py" in str(s.get("run", "")))
    step["run"] = step["run"].replace(" --pull-request", "")


def _drift_as_preview_role(w: Workflows) -> None:
    step = _step(_job(w, "drift", "drift"), lambda s: "configure-aws-credentials" in str(s.get("uses", "")))
    step["with"]["role-to-assume"] = "${{ vars.AWS_PREVIEW_ROLE_ARN }}"


class _FixtureRequest:
    """Stands in for pytest's `request` where a stack test looks its run up by name."""

    def __init__(self, runs: dict[str, StackRun]) -> None:
        self.runs = runs

    def getfixturevalue(self, name: str) -> StackRun:
        return self.runs[name]


DEFECTS = [
    Defect("missing-required-config-key", missing_required_key, rf"{PROJECT}:owner: Field required"),
    Defect("auto-named-role", auto_named_role, r"network-flow-logs-role: refused iam:CreateRole"),
    Defect("api-role-writes-the-domain", api_role_writes, r"es:ESHttpPut"),
    Defect("ingester-is-master-user", ingester_is_master_user, r"ingester"),
    Defect("replicas-on-one-node", replicas_on_one_node, r"replicas .1. must be at most instanceCount - 1"),
    Defect(
        "deploy-role-escalates",
        deploy_role_escalates,
        rf"iam:UpdateAssumeRolePolicy on arn:aws:iam::\d+:role/{PROJECT}-prod",
    ),
    Defect("missing-boundary", missing_boundary, r"permissions-boundary-on-every-role: role api-role"),
    Defect("waf-bypass-execute-api", waf_bypass, r"ORIGIN_VERIFY_SECRET_ARN|origin"),
    Defect("domain-policy-every-verb", domain_policy_every_verb, r"no_role_gets_every_verb"),
    Defect(
        "role-mapping-manual-step",
        no_provisioning_during_up,
        r"expected one aws:lambda/invocation:Invocation",
    ),
    Defect(
        "preview-read-only-access",
        preview_read_only_access,
        rf"s3:GetObject on arn:aws:s3:::{PROJECT}-prod",
    ),
    Defect("preview-decrypts-prod", preview_decrypts_prod, r"kms:Decrypt"),
    Defect(
        "deploy-without-ci-green",
        _workflow_check(test_promotion.test_deploys_wait_for_ci_green_on_the_same_commit, _drop_ci_green),
        r"deploy\.",
    ),
    Defect(
        "cuda-torch-in-a-deploy-job",
        _workflow_check(test_promotion.test_no_workflow_can_install_a_cuda_torch, _cuda_torch),
        r"deploy\.deploy\b",
    ),
    Defect(
        "build-job-installs-the-dev-lock",
        _workflow_check(
            test_lock_platforms.test_the_build_job_runs_on_the_lambda_platform_with_a_portable_set,
            _build_on_dev_lock,
        ),
        r"deploy\.build",
    ),
    Defect(
        "no-policy-pack",
        _workflow_check(
            test_promotion.test_the_policy_pack_is_enforced_on_every_preview_and_up, _no_policy_pack
        ),
        r"deploy\.deploy\b",
    ),
    Defect(
        "preview-via-env-var",
        _workflow_check(
            test_promotion.test_preview_output_travels_in_a_file_never_an_env_var, _preview_in_env_var
        ),
        r"reports/preview-\$STACK\.txt",
    ),
    Defect(
        "unpinned-pulumi-cli",
        _workflow_check(test_promotion.test_the_pulumi_cli_version_is_pinned_in_one_file, _unpinned_cli),
        r"deploy\.deploy\b",
    ),
    Defect(
        "no-refresh-before-up",
        _workflow_check(test_promotion.test_every_up_refreshes_first, _no_refresh),
        r"deploy\.deploy\b",
    ),
    Defect(
        "no-preflight",
        _workflow_check(
            test_promotion.test_preflight_runs_before_every_up_of_a_platform_stack, _no_preflight
        ),
        r"deploy\.deploy\b",
    ),
    Defect(
        "ephemeral-cleanup-on-merge-ref",
        _workflow_check(
            test_promotion.test_ephemeral_cleanup_runs_the_base_branch_code, _cleanup_on_merge_ref
        ),
        r"ref",
    ),
    Defect(
        "no-sweeper",
        _workflow_check(
            test_promotion.test_leaked_pr_stacks_are_swept_on_a_schedule, _without("sweep-pr-stacks")
        ),
        r"sweep-pr-stacks",
    ),
    Defect(
        "no-drift-check",
        _workflow_check(
            test_promotion.test_drift_is_checked_per_stack_on_a_schedule_and_fails_loudly,
            _without("drift"),
        ),
        r"drift",
    ),
    Defect(
        "bootstrap-not-previewed",
        _workflow_check(
            test_promotion.test_bootstrap_is_previewed_on_prs_and_deployed_only_by_its_protected_workflow,
            _without("preview", "bootstrap-preview"),
        ),
        r"bootstrap-preview",
    ),
    Defect(
        "preview-gets-a-passphrase",
        _workflow_check(
            test_secrets_providers.test_no_workflow_passes_a_platform_passphrase, _preview_gets_passphrase
        ),
        r"preview\.pulumi-preview",
    ),
    Defect(
        "prod-previewed-by-pull-requests",
        _workflow_check(
            test_secrets_providers.test_pull_requests_preview_only_the_stacks_whose_secrets_they_may_read,
            _prod_previewed_on_prs,
        ),
        r"--pull-request",
    ),
    Defect(
        "drift-refresh-with-the-preview-role",
        _workflow_check(
            test_secrets_providers.test_drift_uses_the_drift_role_in_its_environment, _drift_as_preview_role
        ),
        r"AWS_PREVIEW_ROLE_ARN",
    ),
]


@pytest.fixture
def context(staging: StackRun, prod: StackRun, monkeypatch: pytest.MonkeyPatch) -> Context:
    return Context(staging, prod, {path.stem: load(path) for path in workflow_files()}, monkeypatch)


@pytest.mark.parametrize("defect", DEFECTS, ids=lambda d: d.id)
def test_each_defect_turns_its_check_red_naming_it(defect: Defect, context: Context) -> None:
    # Given the check that guards the fix / When it runs on today's code / Then it passes
    defect.check(context, False)
    # When the defect is injected into a copy / Then it fails, and its failure names the cause
    with pytest.raises((AssertionError, ConfigError, KeyError, LookupError)) as failure:
        defect.check(context, True)
    text = f"{failure.value!s} {failure.value!r}"
    assert re.search(defect.names, text), text[:2000]


def test_the_docs_table_lists_every_defect() -> None:
    # Given docs/deploying.md's defect -> check table / Then it has one row per case here
    doc = (REPO_ROOT / "docs" / "deploying.md").read_text(encoding="utf-8")
    missing = [d.id for d in DEFECTS if f"`{d.id}`" not in doc]
    assert missing == []
