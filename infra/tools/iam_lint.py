"""IAM lint: every policy document of the program (per stack) and of bootstrap/, checked by
cloudsplaining (privilege escalation, resource exposure, credentials exposure, data
exfiltration, unconstrained infrastructure writes) and parliament (malformed documents,
actions and resources that do not match). Waivers, each with its reason, live in
infra/iam_lint_waivers.yaml; any other finding fails `make security-scan` and `make rehearse`.
"""

from __future__ import annotations

import fnmatch
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.tools.offline import ACCOUNT_ID, ROOT, StackRun
from service.contract import PROJECT

WAIVERS = ROOT / "infra" / "iam_lint_waivers.yaml"
PARLIAMENT_PYTHON = ROOT / ".venv-iamlint" / "bin" / "python"
PARLIAMENT_RUNNER = Path(__file__).with_name("parliament_runner.py")
# Inputs that hold a policy document, and whether it is a resource policy.
POLICY_INPUTS = {
    "policy": False,
    "assumeRolePolicy": True,
    "accessPolicies": True,
    "policyDocument": True,
}
_RESOURCE_POLICY_TYPES = ("aws:s3/bucketPolicy", "aws:sqs/queuePolicy", "aws:kms/key", "aws:secretsmanager")
SAMPLE_REPOSITORY = "acme/rag-platform"
SAMPLE_STATE_BUCKET = "acme-pulumi-state"


@dataclass(frozen=True)
class PolicyDoc:
    label: str
    document: dict[str, Any]
    resource_policy: bool


@dataclass(frozen=True)
class Finding:
    label: str
    tool: str
    issue: str
    detail: str

    def __str__(self) -> str:
        return f"{self.label}: {self.tool} {self.issue} {self.detail}"


def program_policies(run: StackRun) -> list[PolicyDoc]:
    docs: list[PolicyDoc] = []
    for record in run.resources:
        for key, resource_policy in POLICY_INPUTS.items():
            value = record.inputs.get(key)
            if not isinstance(value, str) or '"Statement"' not in value:
                continue
            is_resource = resource_policy or record.type.startswith(_RESOURCE_POLICY_TYPES)
            docs.append(
                PolicyDoc(f"{run.stack}:{record.type}:{record.name}:{key}", json.loads(value), is_resource)
            )
    return docs


def bootstrap_policies(account: str = ACCOUNT_ID) -> list[PolicyDoc]:
    from bootstrap import policies, program

    provider = policies.oidc_provider_arn(account)
    docs = [
        PolicyDoc("bootstrap:permissions-boundary", policies.boundary_document(account), False),
        PolicyDoc("bootstrap:preview", policies.preview_document(), False),
        PolicyDoc(
            "bootstrap:preview:secrets-keys",
            policies.preview_document(None, [f"arn:aws:kms:us-east-1:{account}:key/sample-secrets-key"]),
            False,
        ),
        PolicyDoc("bootstrap:drift", policies.drift_document(account), False),
        PolicyDoc(
            "bootstrap:drift:trust",
            program.trust_policy(provider, SAMPLE_REPOSITORY, f"environment:{policies.DRIFT_ENVIRONMENT}"),
            True,
        ),
        *(
            PolicyDoc(f"bootstrap:secrets-key-{d.environment}", policies.secrets_key_policy(d, account), True)
            for d in policies.DEPLOYERS
        ),
        PolicyDoc("bootstrap:bootstrap", policies.bootstrap_document(account), False),
        PolicyDoc(
            "bootstrap:bootstrap:trust",
            program.trust_policy(
                provider, SAMPLE_REPOSITORY, f"environment:{policies.BOOTSTRAP_ENVIRONMENT}"
            ),
            True,
        ),
        PolicyDoc(
            "bootstrap:preview:trust",
            program.trust_policy(provider, SAMPLE_REPOSITORY, program.PREVIEW_SUBJECT),
            True,
        ),
    ]
    bucket = SAMPLE_STATE_BUCKET
    docs += [
        PolicyDoc("bootstrap:preview:state-bucket", policies.preview_document(bucket), False),
        PolicyDoc("bootstrap:drift:state-bucket", policies.drift_document(account, bucket), False),
        PolicyDoc(
            "bootstrap:preview:state", policies.state_document(bucket, PROJECT, "*", write=False), False
        ),
    ]
    for deployer in policies.DEPLOYERS:
        docs.append(
            PolicyDoc(
                f"bootstrap:deploy-{deployer.environment}:state",
                policies.state_document(bucket, PROJECT, deployer.stacks, write=True),
                False,
            )
        )
        docs.append(
            PolicyDoc(
                f"bootstrap:deploy-{deployer.environment}", policies.deploy_document(deployer, account), False
            )
        )
        claim = f"environment:{deployer.environment}"
        docs.append(
            PolicyDoc(
                f"bootstrap:deploy-{deployer.environment}:trust",
                program.trust_policy(provider, SAMPLE_REPOSITORY, claim),
                True,
            )
        )
    return docs


def cloudsplaining_findings(doc: PolicyDoc) -> list[Finding]:
    """cloudsplaining's risk categories, for identity policies (it does not read resource policies)."""
    if doc.resource_policy:
        return []
    from cloudsplaining.scan.policy_document import PolicyDocument

    scanned = PolicyDocument(doc.document)
    checks: dict[str, list[Any]] = {
        "PrivilegeEscalation": scanned.allows_privilege_escalation,
        "ResourceExposure": scanned.permissions_management_without_constraints,
        "CredentialsExposure": scanned.credentials_exposure,
        "DataExfiltration": scanned.allows_data_exfiltration_actions,
        "InfrastructureModification": scanned.infrastructure_modification,
    }
    return [
        Finding(
            doc.label,
            "cloudsplaining",
            issue,
            f"{len(found)} actions, e.g. {json.dumps(found[:3], default=str)}",
        )
        for issue, found in checks.items()
        if found
    ]


def parliament_findings(docs: list[PolicyDoc], python: Path = PARLIAMENT_PYTHON) -> list[Finding]:
    payload = [{"label": d.label, "document": d.document, "resource_policy": d.resource_policy} for d in docs]
    result = subprocess.run(
        [str(python), str(PARLIAMENT_RUNNER)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"parliament failed:\n{result.stderr[-2000:]}")
    return [Finding(f["label"], "parliament", f["issue"], f["detail"]) for f in json.loads(result.stdout)]


def load_waivers(path: Path = WAIVERS) -> list[dict[str, str]]:
    waivers = (yaml.safe_load(path.read_text()) or {}).get("waivers", [])
    for waiver in waivers:
        if not str(waiver.get("reason", "")).strip():
            raise ValueError(f"IAM lint waiver {waiver.get('policy')} {waiver.get('issue')} has no reason")
    return list(waivers)


def waived(finding: Finding, waivers: list[dict[str, str]]) -> bool:
    return any(
        fnmatch.fnmatchcase(finding.label, w["policy"])
        and w["tool"] == finding.tool
        and fnmatch.fnmatchcase(finding.issue, w["issue"])
        for w in waivers
    )


@dataclass(frozen=True)
class LintResult:
    policies: int
    findings: list[Finding]
    waived: int


def lint(docs: list[PolicyDoc], parliament_python: Path | None = PARLIAMENT_PYTHON) -> LintResult:
    """Both linters over `docs`; parliament is skipped only when explicitly given None."""
    waivers = load_waivers()
    found = [f for doc in docs for f in cloudsplaining_findings(doc)]
    if parliament_python is not None:
        found += parliament_findings(docs, parliament_python)
    open_findings = [f for f in found if not waived(f, waivers)]
    return LintResult(len(docs), open_findings, len(found) - len(open_findings))
