"""The workflows' structure: the promotion graph, OIDC-only AWS access, least privilege, pinning.

Issue 6: "the prod deploy needs the staging gate, it uses the production environment, auth is
OIDC, and there are no static AWS keys". The names asserted here are the workflow contract the
docs (docs/cicd.md) and the GitHub settings depend on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import yaml

from infra.stacks import deploy_matrix, read_stacks
from service.contract import Output
from tests.workflows.conftest import REPO_ROOT, workflow_files

AWS_ACTION = "aws-actions/configure-aws-credentials"
PULUMI_ACTION = "pulumi/actions"
FULL_SHA_WITH_VERSION = re.compile(r"^\s*-?\s*uses: [\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+(\.\d+)*$")
STACK_MATRIX = "${{ fromJSON(needs.stacks.outputs.list) }}"
DEPLOY_MATRIX = "${{ fromJSON(needs.order.outputs.deploy-matrix) }}"
PULUMI_VERSION_FILE = ".pulumi-version"
POLICY_PACK = "infra/policy"
STATIC_KEYS = ("aws-access-key-id", "aws-secret-access-key", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def _jobs(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    jobs = workflow["jobs"]
    assert isinstance(jobs, dict)
    return jobs


def _all_jobs(workflows: dict[str, dict[str, Any]]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for name, workflow in workflows.items():
        for job_id, job in _jobs(workflow).items():
            yield name, job_id, job


def _steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job.get("steps", []) if str(s.get("uses", "")).startswith(f"{action}@")]


def _env_name(job: dict[str, Any]) -> str | None:
    env = job.get("environment")
    return env.get("name") if isinstance(env, dict) else env


def _runs(job: dict[str, Any]) -> str:
    return "\n".join(str(s.get("run", "")) for s in job.get("steps", []))


def _needs(job: dict[str, Any]) -> set[str]:
    needs = job.get("needs", [])
    return {needs} if isinstance(needs, str) else set(needs)


def test_the_workflows_exist(workflows: dict[str, dict[str, Any]]) -> None:
    # Given the workflows folder / Then it holds tests, PR preview, deploy, the per-PR stack, the
    # drift check, the pr-* sweeper and the bootstrap deploy
    assert {"ci", "preview", "deploy", "ephemeral", "drift", "sweep-pr-stacks", "bootstrap"} <= set(workflows)


def test_stacks_deploy_one_at_a_time_in_the_declared_order(workflows: dict[str, dict[str, Any]]) -> None:
    # Given the deploy workflow, on pushes to main
    deploy = workflows["deploy"]
    jobs = _jobs(deploy)
    assert deploy["on"]["push"]["branches"] == ["main"]
    # When we find the jobs that deploy: one, a matrix over the declared order (issue 13)
    deployers = [
        job_id
        for job_id, job in jobs.items()
        if any(s.get("with", {}).get("command") == "up" for s in job.get("steps", []))
    ]
    assert deployers == ["deploy"]
    job = jobs["deploy"]
    assert "python -m infra.stacks deploy-matrix --github-output" in _runs(jobs["order"])
    assert job["strategy"]["matrix"] == DEPLOY_MATRIX
    assert _needs(job) == {"build", "order"}
    assert "make package" in _runs(jobs["build"])
    # Then the stacks go one at a time, and a failure stops every later one
    assert job["strategy"]["max-parallel"] == 1
    assert job["strategy"]["fail-fast"] is True
    # ... each in its own GitHub environment (approvals), with its own deploy role
    assert _env_name(job) == "${{ matrix.environment }}"
    (aws,) = _steps_using(job, AWS_ACTION)
    assert aws["with"]["role-to-assume"] == "${{ vars[matrix.role_variable] }}"
    # ... and the post-deploy suite runs after `pulumi up` in the same job (one approval):
    # smoke everywhere, the seeded retrieval gate where the tier allows it
    steps = job["steps"]
    up = next(i for i, s in enumerate(steps) if s.get("with", {}).get("command") == "up")
    smoke = next(i for i, s in enumerate(steps) if "pipelines.postdeploy smoke" in str(s.get("run", "")))
    gate = next(i for i, s in enumerate(steps) if "pipelines.postdeploy gate" in str(s.get("run", "")))
    assert up < smoke < gate
    assert steps[gate]["if"] == "${{ matrix.gate }}"


def test_the_deploy_order_is_the_tiers_order() -> None:
    # Given the committed stack files, When the deploy matrix is read as the order job reads it
    entries = {e["stack"]: e for e in deploy_matrix()["include"]}
    order = list(entries)
    # Then it follows infra/tiers.yaml (staging before prod; a fork's other stacks by their tier),
    # prod under `production` with its own role variable, and prod skips seeding the gate's documents
    assert order.index("staging") < order.index("prod")
    assert order == [s.name for s in read_stacks()]
    assert (entries["staging"]["environment"], entries["prod"]["environment"]) == ("staging", "production")
    assert entries["staging"]["role_variable"] == "AWS_DEPLOY_ROLE_ARN_STAGING"
    assert entries["prod"]["role_variable"] == "AWS_DEPLOY_ROLE_ARN_PRODUCTION"
    assert (entries["staging"]["gate"], entries["prod"]["gate"]) == (True, False)


def test_every_deploy_uses_the_artifact_built_once(workflows: dict[str, dict[str, Any]]) -> None:
    # Given the deploy workflow
    jobs = _jobs(workflows["deploy"])
    build = jobs["build"]

    # Then the build uploads the artifact and records its hash as a job output
    assert _steps_using(build, "actions/upload-artifact")
    assert "sha256sum" in _runs(build)
    assert "sha256" in build["outputs"]

    # And each stack's deploy downloads that artifact and checks the hash before `pulumi up`
    job = jobs["deploy"]
    assert _steps_using(job, "actions/download-artifact")
    assert job["env"]["EXPECTED_SHA256"] == "${{ needs.build.outputs.sha256 }}"
    assert "sha256sum --check" in _runs(job)
    assert ':artifactPath" "$GITHUB_WORKSPACE/$ARTIFACT_FILE"' in _runs(job)
    # And its suite checks the deployed stack reports the same artifact
    assert '--expect-artifact-sha256 "$EXPECTED_SHA256"' in _runs(job)


def test_deploys_form_one_uncancellable_concurrency_group_per_environment(
    workflows: dict[str, dict[str, Any]],
) -> None:
    # Given every job that deploys to, or tests, a GitHub environment
    groups: dict[str, set[str]] = {}
    for name, job_id, job in _all_jobs(workflows):
        env = _env_name(job)
        if env is None:
            continue
        # Then it holds that environment's deploy lock and is never cancelled halfway
        concurrency = job.get("concurrency")
        assert isinstance(concurrency, dict), f"{name}.{job_id} has no concurrency group"
        assert concurrency["cancel-in-progress"] is False, f"{name}.{job_id}"
        groups.setdefault(env, set()).add(concurrency["group"])

    # And each environment has its own groups, distinct from the others'
    assert groups["${{ matrix.environment }}"] == {"deploy-${{ matrix.environment }}"}
    assert groups["bootstrap"] == {"deploy-bootstrap"}
    # (the sweeper destroys only stacks of closed PRs, which no PR run holds)
    assert groups["ephemeral"] == {"deploy-pr-${{ github.event.pull_request.number }}", "deploy-pr-sweep"}
    # (the drift check changes nothing; one run per stack at a time)
    assert groups["drift"] == {"drift-${{ matrix.stack }}"}


def test_aws_is_reached_through_oidc_only(workflows: dict[str, dict[str, Any]]) -> None:
    # Given every job of every workflow
    for name, job_id, job in _all_jobs(workflows):
        assumes = _steps_using(job, AWS_ACTION)
        permissions = job.get("permissions", {})
        # Then a job gets an OIDC token exactly when it assumes an AWS role with it
        assert (permissions.get("id-token") == "write") == bool(assumes), f"{name}.{job_id}"
        for step in assumes:
            assert set(step["with"]) == {"role-to-assume", "aws-region"}, f"{name}.{job_id}"
            role = step["with"]["role-to-assume"]
            # (the deploy matrix names the variable per stack: infra/stacks.py role_variable)
            assert role.startswith("${{ vars.AWS_") or role == "${{ vars[matrix.role_variable] }}", (
                f"{name}.{job_id}"
            )

    # And no workflow mentions a static AWS key, anywhere
    for path in workflow_files():
        text = path.read_text(encoding="utf-8")
        for key in STATIC_KEYS:
            assert key not in text, f"{path.name} mentions {key}"


def test_permissions_are_least_privilege_per_job(workflows: dict[str, dict[str, Any]]) -> None:
    # Given every workflow: no token scope by default
    for name, workflow in workflows.items():
        assert workflow["permissions"] == {}, name
    # Then every job states its own, and only these scopes are ever granted
    allowed = {
        ("contents", "read"),
        ("id-token", "write"),
        ("actions", "read"),
        ("pull-requests", "write"),
        ("pull-requests", "read"),
        ("issues", "write"),
    }
    for name, job_id, job in _all_jobs(workflows):
        permissions = job.get("permissions")
        assert isinstance(permissions, dict), f"{name}.{job_id} states no permissions"
        assert permissions, f"{name}.{job_id} grants nothing: say `contents: read`"
        assert set(permissions.items()) <= allowed, f"{name}.{job_id}: {permissions}"
    # And writing to pull requests is the comment job's alone
    writers = [
        (n, j) for n, j, job in _all_jobs(workflows) if job["permissions"].get("pull-requests") == "write"
    ]
    assert writers == [("preview", "comment")]
    # And opening issues is the drift check's alone
    issuers = [(n, j) for n, j, job in _all_jobs(workflows) if job["permissions"].get("issues")]
    assert issuers == [("drift", "drift")]


def test_pulumi_credentials_come_from_secrets(workflows: dict[str, dict[str, Any]]) -> None:
    # Given every place a workflow sets a Pulumi credential or backend
    seen = 0
    for name, job_id, job in _all_jobs(workflows):
        scopes = [job.get("env", {})] + [s.get("env", {}) for s in job.get("steps", [])]
        for env in scopes:
            for key in ("PULUMI_ACCESS_TOKEN", "PULUMI_BACKEND_URL"):
                if key in env:
                    seen += 1
                    # Then its value is the repository secret of the same name
                    assert env[key] == f"${{{{ secrets.{key} }}}}", f"{name}.{job_id}"
            # And a passphrase, where one is set at all, is bootstrap/'s own (the platform stacks'
            # secrets are KMS-encrypted: tests/workflows/test_secrets_providers.py)
            if "PULUMI_CONFIG_PASSPHRASE" in env:
                assert env["PULUMI_CONFIG_PASSPHRASE"] == "${{ secrets.PULUMI_BOOTSTRAP_PASSPHRASE }}", (
                    f"{name}.{job_id}"
                )
    assert seen > 0


def test_every_action_is_pinned_to_a_full_commit_sha() -> None:
    # Given every `uses:` line of every workflow
    lines = [
        (path.name, line)
        for path in workflow_files()
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip().startswith(("uses:", "- uses:"))
    ]
    assert lines
    # Then each names a 40-hex commit and says which release it is
    unpinned = [f"{name}: {line.strip()}" for name, line in lines if not FULL_SHA_WITH_VERSION.match(line)]
    assert unpinned == []


def test_one_sha_per_action(workflows: dict[str, dict[str, Any]]) -> None:
    # Given every action reference / Then one action is pinned to one commit everywhere
    refs: dict[str, set[str]] = {}
    for _, _, job in _all_jobs(workflows):
        for step in job.get("steps", []):
            if "uses" in step:
                action, sha = step["uses"].split("@")
                refs.setdefault(action, set()).add(sha)
    assert {a: s for a, s in refs.items() if len(s) > 1} == {}


def test_no_privileged_pull_request_trigger() -> None:
    # Given the workflow files / Then none runs PR code with the base repository's privileges
    for path in workflow_files():
        text = path.read_text(encoding="utf-8")
        assert "pull_request_target" not in text, path.name
        assert "workflow_run" not in text, path.name


def test_stack_outputs_named_in_workflows_are_contract_outputs() -> None:
    # Given every stack output a workflow reads from a `pulumi/actions` step
    names = {
        m.group(1)
        for path in workflow_files()
        for m in re.finditer(r"steps\.up\.outputs\.(\w+)", path.read_text(encoding="utf-8"))
    }
    assert names
    # Then each is a key the Pulumi program exports (service.contract.Output)
    assert names <= {o.value for o in Output}


def test_ci_runs_make_test_with_services_and_the_page_test(
    workflows: dict[str, dict[str, Any]],
) -> None:
    # Given the CI workflow
    ci = workflows["ci"]
    jobs = _jobs(ci)

    # Then it runs on push and pull request
    assert set(ci["on"]) == {"push", "pull_request"}
    # And `make test` on the locks' Python, with pip's cache
    test = jobs["test"]
    assert test["strategy"]["matrix"]["python-version"] == ["3.11"]
    assert "make test" in _runs(test)
    (setup,) = _steps_using(test, "actions/setup-python")
    assert setup["with"]["cache"] == "pip"
    # And the backend contract tests against real OpenSearch and Elasticsearch containers
    contract = jobs["backend-contract"]
    assert {"opensearch", "elasticsearch"} == set(contract["services"])
    assert {"OPENSEARCH_URL", "ELASTICSEARCH_URL"} <= set(contract["env"])
    assert "pytest -q tests/contract" in _runs(contract)
    # And the Playwright page test with Debian's Chromium
    page = jobs["page"]
    assert "apt-get install -y --no-install-recommends chromium" in _runs(page)
    assert "tests/e2e -k page" in _runs(page)


def test_preview_posts_one_comment_with_every_stack_and_all_reports(
    workflows: dict[str, dict[str, Any]],
) -> None:
    # Given the preview workflow
    preview = workflows["preview"]
    jobs = _jobs(preview)
    assert set(preview["on"]) == {"pull_request"}

    # Then it previews every stack with a diff, after `make package`
    job = jobs["pulumi-preview"]
    assert job["strategy"]["matrix"]["stack"] == STACK_MATRIX
    steps = job["steps"]
    package = next(i for i, s in enumerate(steps) if "make package" in str(s.get("run", "")))
    preview_step = next(i for i, s in enumerate(steps) if "pulumi preview" in str(s.get("run", "")))
    assert preview_step > package
    assert "--diff" in steps[preview_step]["run"]
    # And the reports job produces the inventory diff, checkov summary and cost delta
    assert "for target in diff-inventory security-scan cost" in _runs(jobs["reports"])
    # And one job writes the comment, after all of them, even when one failed
    comment = jobs["comment"]
    assert _needs(comment) == {"pulumi-preview", "bootstrap-preview", "reports"}
    assert comment["if"].startswith("always()")
    assert ".github/scripts/pr_comment.py" in _runs(comment)


def test_ephemeral_stack_is_behind_the_label_and_always_destroyed(
    workflows: dict[str, dict[str, Any]],
) -> None:
    # Given the per-PR workflow
    jobs = _jobs(workflows["ephemeral"])
    main = jobs["deploy-test-destroy"]

    # Then it runs only for labelled, same-repository pull requests
    assert "contains(github.event.pull_request.labels.*.name, 'preview-stack')" in main["if"]
    assert "github.event.pull_request.head.repo.full_name == github.repository" in main["if"]
    # And it deploys, tests and then destroys the stack whatever happened
    commands = [s.get("with", {}).get("command") for s in _steps_using(main, PULUMI_ACTION)]
    assert commands == [None, "up", "destroy"]
    destroy = _steps_using(main, PULUMI_ACTION)[-1]
    assert destroy["if"] == "always()"
    assert destroy["with"]["remove"] is True
    assert "pipelines.postdeploy smoke" in _runs(main)
    # And closing the PR cleans up a stack a failed run left
    assert "pulumi destroy --yes --remove" in _runs(jobs["cleanup"])


# --- issue 9, item 4: one test per workflow defect found on the old main -------------------------


def _pulumi_action_steps(workflows: dict[str, dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(n, j, s) for n, j, job in _all_jobs(workflows) for s in _steps_using(job, PULUMI_ACTION)]


def _ups(workflows: dict[str, dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (n, j, s) for n, j, s in _pulumi_action_steps(workflows) if s.get("with", {}).get("command") == "up"
    ]


def _needs_closure(jobs: dict[str, dict[str, Any]], job_id: str) -> set[str]:
    seen: set[str] = set()
    todo = list(_needs(jobs[job_id]))
    while todo:
        j = todo.pop()
        if j not in seen:
            seen.add(j)
            todo += list(_needs(jobs[j]))
    return seen


def test_deploys_wait_for_ci_green_on_the_same_commit(workflows: dict[str, dict[str, Any]]) -> None:
    # Given the workflows that deploy shared stacks on a push to main
    for name in ("deploy", "bootstrap"):
        jobs = _jobs(workflows[name])
        gate = jobs["ci-green"]
        # Then a gate job asks the Actions API for ci.yml's run of this commit (actions: read)
        assert "python3 .github/scripts/ci_gate.py" in _runs(gate), name
        assert gate["permissions"].get("actions") == "read", name
        # And every job that reaches AWS depends on that gate
        for job_id, job in jobs.items():
            if _steps_using(job, AWS_ACTION):
                assert "ci-green" in _needs_closure(jobs, job_id), f"{name}.{job_id}"
    # And the gate waits for the workflow that is really CI
    gate_script = (REPO_ROOT / ".github" / "scripts" / "ci_gate.py").read_text(encoding="utf-8")
    assert 'CI_WORKFLOW = "ci.yml"' in gate_script
    assert workflows["ci"]["name"] == "ci"


def test_no_workflow_can_install_a_cuda_torch(workflows: dict[str, dict[str, Any]]) -> None:
    # Given every job / Then none installs with pip around the lock or replaces pip's sources
    for name, job_id, job in _all_jobs(workflows):
        runs = _runs(job)
        pip_installs = [line for line in runs.splitlines() if "pip install" in line]
        # (a lone tool such as pyyaml is fine; the project, its extras or torch go through `make`)
        around_lock = [line for line in pip_installs if re.search(r"torch|\.\[|-e |-r ", line)]
        assert around_lock == [], f"{name}.{job_id}"
        scopes = [workflows[name].get("env", {}), job.get("env", {})] + [
            s.get("env", {}) for s in job["steps"]
        ]
        for env in scopes:
            assert not {"PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX"} & set(env), f"{name}.{job_id}"
    # And every job that runs Pulumi against AWS installs only the infra set (no torch at all)
    for name, job_id, job in _all_jobs(workflows):
        if _steps_using(job, AWS_ACTION):
            installs = [
                line for line in _runs(job).splitlines() if re.search(r"\bmake (venv|package)\b", line)
            ]
            assert installs, f"{name}.{job_id} installs nothing"
            assert all("LOCK_SET=infra" in line for line in installs), f"{name}.{job_id}: {installs}"


def test_the_policy_pack_is_enforced_on_every_preview_and_up(workflows: dict[str, dict[str, Any]]) -> None:
    # Given every `pulumi up` of the platform program (bootstrap/ is a separate program)
    ups = [(n, j, s) for n, j, s in _ups(workflows) if s["with"].get("work-dir") != "bootstrap"]
    assert ups
    for name, job_id, step in ups:
        # Then it runs the policy pack, which fails the update on a mandatory violation
        assert step["with"].get("policyPacks") == POLICY_PACK, f"{name}.{job_id}"
    # And every preview of a platform stack runs it too
    previews = [
        line
        for _, _, job in _all_jobs(workflows)
        for line in _runs(job).splitlines()
        if line.strip().startswith("pulumi preview") and "--cwd bootstrap" not in line
    ]
    assert previews
    assert all(
        f"--policy-pack {POLICY_PACK}" in line for line in previews if "--expect-no-changes" not in line
    )
    assert (REPO_ROOT / POLICY_PACK / "PulumiPolicy.yaml").is_file()


def test_the_pulumi_cli_version_is_pinned_in_one_file(workflows: dict[str, dict[str, Any]]) -> None:
    # Given every pulumi/actions step (each may install the CLI)
    steps = _pulumi_action_steps(workflows)
    assert steps
    for name, job_id, step in steps:
        # Then each reads the one version file, and none names a version of its own
        assert step.get("with", {}).get("pulumi-version-file") == PULUMI_VERSION_FILE, f"{name}.{job_id}"
        assert "pulumi-version" not in step.get("with", {}), f"{name}.{job_id}"
    # And that file holds one exact version, the same as the Pulumi SDK pin
    version = (REPO_ROOT / PULUMI_VERSION_FILE).read_text(encoding="utf-8").strip()
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    constraints = (REPO_ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines()
    assert f"pulumi=={version}" in constraints


def test_preview_output_travels_in_a_file_never_an_env_var(workflows: dict[str, dict[str, Any]]) -> None:
    # Given every workflow file / Then no step reads a Pulumi step's `output` (the whole preview
    # text) into an expression: an env var over 128 KiB fails the step (E2BIG)
    for path in workflow_files():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"steps\.\w+\.outputs\.output\b", text), path.name
    # And the preview writes its text to the report file the comment job reads
    runs = _runs(_jobs(workflows["preview"])["pulumi-preview"])
    assert '> "reports/preview-$STACK.txt" 2>&1' in runs


def test_every_up_refreshes_first(workflows: dict[str, dict[str, Any]]) -> None:
    ups = _ups(workflows)
    assert {n for n, _, _ in ups} == {"deploy", "ephemeral", "bootstrap"}
    for name, job_id, step in ups:
        assert step["with"].get("refresh") is True, f"{name}.{job_id}"


def test_preflight_runs_before_every_up_of_a_platform_stack(workflows: dict[str, dict[str, Any]]) -> None:
    for name, job_id, job in _all_jobs(workflows):
        steps = job.get("steps", [])
        for i, step in enumerate(steps):
            if step.get("with", {}).get("command") == "up" and step["with"].get("work-dir") != "bootstrap":
                before = "\n".join(str(s.get("run", "")) for s in steps[:i])
                # Then quotas (Lambda concurrency, VPCs, log resource policies) are checked first
                assert 'make preflight STACK="$STACK"' in before, f"{name}.{job_id}"


def test_drift_is_checked_per_stack_on_a_schedule_and_fails_loudly(
    workflows: dict[str, dict[str, Any]],
) -> None:
    # Given the drift workflow
    drift = workflows["drift"]
    assert drift["on"]["schedule"]
    job = _jobs(drift)["drift"]
    # Then it checks every stack file's stack
    assert job["strategy"]["matrix"]["stack"] == STACK_MATRIX
    assert job["strategy"]["fail-fast"] is False
    # With a refreshed preview that fails on any change
    runs = _runs(job)
    assert 'pulumi preview --stack "$STACK" --refresh --expect-no-changes' in runs
    # And a failure is loud: an error annotation, the run summary, an issue
    loud = next(s for s in job["steps"] if s.get("if") == "failure()")
    assert "::error::" in loud["run"]
    assert "GITHUB_STEP_SUMMARY" in loud["run"]
    assert "gh issue create" in loud["run"]


def test_bootstrap_is_previewed_on_prs_and_deployed_only_by_its_protected_workflow(
    workflows: dict[str, dict[str, Any]],
) -> None:
    # Given the preview workflow / Then every PR previews bootstrap/ too
    bootstrap_preview = _jobs(workflows["preview"])["bootstrap-preview"]
    assert "pulumi preview --cwd bootstrap" in _runs(bootstrap_preview)
    # And the one job that updates bootstrap/ uses the `bootstrap` environment (reviewers)
    updates = [
        (n, j)
        for n, j, s in _ups(workflows)
        if s["with"].get("work-dir") == "bootstrap" or "--cwd bootstrap" in str(s.get("run", ""))
    ]
    assert updates == [("bootstrap", "deploy-bootstrap")]
    job = _jobs(workflows["bootstrap"])["deploy-bootstrap"]
    assert _env_name(job) == "bootstrap"
    assert workflows["bootstrap"]["on"]["push"] == {"branches": ["main"], "paths": ["bootstrap/**"]}
    (assume,) = _steps_using(job, AWS_ACTION)
    assert assume["with"]["role-to-assume"] == "${{ vars.AWS_BOOTSTRAP_ROLE_ARN }}"


def test_ephemeral_cleanup_runs_the_base_branch_code(workflows: dict[str, dict[str, Any]]) -> None:
    # Given the cleanup on PR close / Then it checks out the base branch, not the PR's merge ref
    cleanup = _jobs(workflows["ephemeral"])["cleanup"]
    (checkout,) = _steps_using(cleanup, "actions/checkout")
    assert checkout["with"]["ref"] == "${{ github.event.pull_request.base.ref }}"


def test_leaked_pr_stacks_are_swept_on_a_schedule(workflows: dict[str, dict[str, Any]]) -> None:
    sweep = workflows["sweep-pr-stacks"]
    assert sweep["on"]["schedule"]
    (job,) = _jobs(sweep).values()
    runs = _runs(job)
    assert "python3 .github/scripts/sweep_pr_stacks.py" in runs
    assert 'pulumi destroy --yes --remove --stack "$stack"' in runs
    assert job["permissions"].get("pull-requests") == "read"
    (assume,) = _steps_using(job, AWS_ACTION)
    assert assume["with"]["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN_EPHEMERAL }}"


def test_dependabot_updates_pip_and_actions() -> None:
    path = REPO_ROOT / ".github" / "dependabot.yml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    ecosystems = {(u["package-ecosystem"], u["directory"]) for u in config["updates"]}
    assert ecosystems == {("pip", "/"), ("github-actions", "/")}


def test_every_pr_rehearses_every_stack(workflows: dict[str, dict[str, Any]]) -> None:
    # Given CI, which runs on every pull request
    ci = workflows["ci"]
    assert "pull_request" in ci["on"]
    job = _jobs(ci)["rehearse"]
    # Then it runs `make rehearse` for each stack file's stack
    assert job["strategy"]["matrix"]["stack"] == STACK_MATRIX
    assert 'make rehearse STACK="$STACK"' in _runs(job)
    # And the lock check gates the test job
    assert "make lock-check" in _runs(_jobs(ci)["test"])


def test_stack_lists_are_derived_not_repeated(workflows: dict[str, dict[str, Any]]) -> None:
    # Given every job matrix / Then none lists stack names: they come from the stacks job
    for name, job_id, job in _all_jobs(workflows):
        matrix = job.get("strategy", {}).get("matrix", {})
        if "stack" in matrix:
            assert matrix["stack"] == STACK_MATRIX, f"{name}.{job_id}"
            assert "stacks" in _needs(job), f"{name}.{job_id}"
    for name, workflow in workflows.items():
        if "stacks" in _jobs(workflow):
            listing = re.search(
                r"python3 \.github/scripts/stacks\.py( --pull-request| --drift)? --github-output",
                _runs(_jobs(workflow)["stacks"]),
            )
            assert listing, name


def test_the_gate_compares_with_the_previous_deploy_and_keeps_its_own_figures(
    workflows: dict[str, dict[str, Any]],
) -> None:
    # Given the deploy job
    job = _jobs(workflows["deploy"])["deploy"]
    steps = job["steps"]
    gate = next(s for s in steps if "pipelines.postdeploy gate" in str(s.get("run", "")))
    # Then the gate reads the previous deploy's figures and records its own
    assert "--previous previous/gate-figures.json" in gate["run"]
    assert "--record" in gate["run"]
    # And the previous figures come from the last successful deploy's artifact of this stack
    download = next(s for s in steps if str(s.get("with", {}).get("path", "")) == "previous/")
    assert download["with"]["name"] == "gate-figures-${{ matrix.stack }}"
    assert download["with"]["path"] == "previous/"
    assert download.get("continue-on-error") is True  # a first deploy has none
    # And only a passing gate's figures become the next deploy's baseline
    uploads = [s for s in steps if "upload-artifact" in str(s.get("uses", ""))]
    upload = next(s for s in uploads if str(s["with"]["name"]).startswith("gate-figures-"))
    assert "success()" in upload["if"]
    assert job["permissions"]["actions"] == "read"
