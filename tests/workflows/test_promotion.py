"""The workflows' structure: the promotion graph, OIDC-only AWS access, least privilege, pinning.

Issue 6: "the prod deploy needs the staging gate, it uses the production environment, auth is
OIDC, and there are no static AWS keys". The names asserted here are the workflow contract the
docs (docs/cicd.md) and the GitHub settings depend on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from service.contract import PROJECT, Output
from tests.workflows.conftest import workflow_files

AWS_ACTION = "aws-actions/configure-aws-credentials"
PULUMI_ACTION = "pulumi/actions"
FULL_SHA_WITH_VERSION = re.compile(r"^\s*-?\s*uses: [\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+(\.\d+)*$")
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


def test_the_four_workflows_exist(workflows: dict[str, dict[str, Any]]) -> None:
    # Given the workflows folder / Then it holds tests, PR preview, deploy and the per-PR stack
    assert {"ci", "preview", "deploy", "ephemeral"} <= set(workflows)


def test_prod_deploy_is_promoted_only_through_the_staging_gate(workflows: dict[str, dict[str, Any]]) -> None:
    # Given the deploy workflow, on pushes to main
    deploy = workflows["deploy"]
    jobs = _jobs(deploy)
    assert deploy["on"]["push"]["branches"] == ["main"]

    # When we find the job deploying to the production environment
    prod = [job_id for job_id, job in jobs.items() if _env_name(job) == "production"]
    assert prod == ["deploy-prod"]
    prod_job = jobs["deploy-prod"]

    # Then it needs the staging gate, which runs the smoke suite and the retrieval gate on staging
    gates = [j for j in _needs(prod_job) if _env_name(jobs[j]) == "staging"]
    assert gates == ["staging-gate"]
    gate_runs = _runs(jobs["staging-gate"])
    assert "pipelines.postdeploy smoke --from-stack" in gate_runs
    assert "pipelines.postdeploy gate --from-stack" in gate_runs
    # ... after staging was deployed from the one build
    assert _needs(jobs["staging-gate"]) == {"build", "deploy-staging"}
    assert _needs(jobs["deploy-staging"]) == {"build"}
    assert "make package" in _runs(jobs["build"])
    # ... and prod is smoke-tested after its `pulumi up`, in the same job (one approval)
    steps = prod_job["steps"]
    up = next(i for i, s in enumerate(steps) if s.get("with", {}).get("command") == "up")
    smoke = next(i for i, s in enumerate(steps) if "pipelines.postdeploy smoke" in str(s.get("run", "")))
    assert up < smoke


def test_every_deploy_uses_the_artifact_built_once(workflows: dict[str, dict[str, Any]]) -> None:
    # Given the deploy workflow
    jobs = _jobs(workflows["deploy"])
    build = jobs["build"]

    # Then the build uploads the artifact and records its hash as a job output
    assert _steps_using(build, "actions/upload-artifact")
    assert "sha256sum" in _runs(build)
    assert "sha256" in build["outputs"]

    # And each deploy downloads that artifact and checks the hash before `pulumi up`
    for job_id in ("deploy-staging", "deploy-prod"):
        job = jobs[job_id]
        assert _steps_using(job, "actions/download-artifact"), job_id
        assert job["env"]["EXPECTED_SHA256"] == "${{ needs.build.outputs.sha256 }}", job_id
        assert "sha256sum --check" in _runs(job), job_id
        assert f"{PROJECT}:artifactPath" in _runs(job), job_id
    # And both suites check the deployed stack reports the same artifact
    for job_id in ("staging-gate", "deploy-prod"):
        assert '--expect-artifact-sha256 "$EXPECTED_SHA256"' in _runs(jobs[job_id]), job_id


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

    # And each environment has exactly one group, distinct from the others'
    assert groups["staging"] == {"deploy-staging"}
    assert groups["production"] == {"deploy-production"}
    assert groups["ephemeral"] == {"deploy-pr-${{ github.event.pull_request.number }}"}


def test_aws_is_reached_through_oidc_only(workflows: dict[str, dict[str, Any]]) -> None:
    # Given every job of every workflow
    for name, job_id, job in _all_jobs(workflows):
        assumes = _steps_using(job, AWS_ACTION)
        permissions = job.get("permissions", {})
        # Then a job gets an OIDC token exactly when it assumes an AWS role with it
        assert (permissions.get("id-token") == "write") == bool(assumes), f"{name}.{job_id}"
        for step in assumes:
            assert set(step["with"]) == {"role-to-assume", "aws-region"}, f"{name}.{job_id}"
            assert step["with"]["role-to-assume"].startswith("${{ vars.AWS_"), f"{name}.{job_id}"

    # And no workflow mentions a static AWS key, anywhere
    for path in workflow_files():
        text = path.read_text(encoding="utf-8")
        for key in STATIC_KEYS:
            assert key not in text, f"{path.name} mentions {key}"


def test_prod_assumes_the_production_role(workflows: dict[str, dict[str, Any]]) -> None:
    # Given the deploy jobs / Then each environment uses its own role, never another's
    jobs = _jobs(workflows["deploy"])
    expected = {
        "deploy-staging": "AWS_DEPLOY_ROLE_ARN_STAGING",
        "staging-gate": "AWS_DEPLOY_ROLE_ARN_STAGING",
        "deploy-prod": "AWS_DEPLOY_ROLE_ARN_PRODUCTION",
    }
    for job_id, variable in expected.items():
        (step,) = _steps_using(jobs[job_id], AWS_ACTION)
        assert step["with"]["role-to-assume"] == f"${{{{ vars.{variable} }}}}", job_id


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
    }
    for name, job_id, job in _all_jobs(workflows):
        permissions = job.get("permissions")
        assert isinstance(permissions, dict), f"{name}.{job_id} states no permissions"
        assert permissions, f"{name}.{job_id} grants nothing: say `contents: read`"
        assert set(permissions.items()) <= allowed, f"{name}.{job_id}: {permissions}"
    # And writing to pull requests is the comment job's alone
    writers = [(n, j) for n, j, job in _all_jobs(workflows) if job["permissions"].get("pull-requests")]
    assert writers == [("preview", "comment")]


def test_pulumi_credentials_come_from_secrets(workflows: dict[str, dict[str, Any]]) -> None:
    # Given every place a workflow sets a Pulumi credential or backend
    seen = 0
    for name, job_id, job in _all_jobs(workflows):
        scopes = [job.get("env", {})] + [s.get("env", {}) for s in job.get("steps", [])]
        for env in scopes:
            for key in ("PULUMI_ACCESS_TOKEN", "PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE"):
                if key in env:
                    seen += 1
                    # Then its value is the repository secret of the same name
                    assert env[key] == f"${{{{ secrets.{key} }}}}", f"{name}.{job_id}"
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


def test_ci_runs_make_test_on_both_pythons_with_services_and_the_page_test(
    workflows: dict[str, dict[str, Any]],
) -> None:
    # Given the CI workflow
    ci = workflows["ci"]
    jobs = _jobs(ci)

    # Then it runs on push and pull request
    assert set(ci["on"]) == {"push", "pull_request"}
    # And `make test` on Python 3.11 and 3.12, with pip's cache
    test = jobs["test"]
    assert test["strategy"]["matrix"]["python-version"] == ["3.11", "3.12"]
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


def test_preview_posts_one_comment_with_both_stacks_and_all_reports(
    workflows: dict[str, dict[str, Any]],
) -> None:
    # Given the preview workflow
    preview = workflows["preview"]
    jobs = _jobs(preview)
    assert set(preview["on"]) == {"pull_request"}

    # Then it previews staging and prod with a diff, after `make package`, through the Pulumi action
    job = jobs["pulumi-preview"]
    assert job["strategy"]["matrix"]["stack"] == ["staging", "prod"]
    steps = job["steps"]
    package = next(i for i, s in enumerate(steps) if "make package" in str(s.get("run", "")))
    (pulumi,) = _steps_using(job, PULUMI_ACTION)
    assert steps.index(pulumi) > package
    assert pulumi["with"]["command"] == "preview"
    assert pulumi["with"]["diff"] is True
    # The action's own comment is off: one comment holds everything
    assert pulumi["with"]["comment-on-pr"] is False
    # And the reports job produces the inventory diff, checkov summary and cost delta
    assert "for target in diff-inventory security-scan cost" in _runs(jobs["reports"])
    # And one job writes the comment, after both, even when one failed
    comment = jobs["comment"]
    assert _needs(comment) == {"pulumi-preview", "reports"}
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
