"""Who deploys, previews and drift-checks which stacks, and whose key encrypts each stack's secrets.

Plain data, standard library only: `.github/scripts/stacks.py` reads it before any virtualenv
exists (the PR-preview stack list, each stack's secrets provider), and bootstrap/policies.py
builds the IAM documents and key policies from it.

Secrets (issue 9, "previews never get a passphrase that decrypts prod"): there is no passphrase.
Each deployer's stacks encrypt their config and state secrets with their own KMS key
(`awskms://alias/rag-platform-github-secrets-<environment>`, Pulumi's `awskms` secrets provider,
https://www.pulumi.com/docs/iac/concepts/secrets/#available-encryption-providers), created by
bootstrap/. A key's policy names the only roles that may decrypt with it; it does not delegate
decryption to IAM policies, so no other role of the account can be granted it.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from service.contract import PROJECT

DEPLOY_ROLE_PREFIX = f"{PROJECT}-github-"
PREVIEW_ROLE_NAME = f"{DEPLOY_ROLE_PREFIX}preview"
# The nightly drift check (.github/workflows/drift.yml, GitHub environment `drift`, deployment
# branch `main` only): main's reviewed code, read-only, may decrypt every long-lived stack.
DRIFT_ENVIRONMENT = "drift"
DRIFT_ROLE_NAME = f"{DEPLOY_ROLE_PREFIX}drift"
SECRETS_ALIAS_PREFIX = f"alias/{DEPLOY_ROLE_PREFIX}secrets-"


@dataclass(frozen=True)
class Deployer:
    """One GitHub environment, the Pulumi stacks its jobs may deploy, and who else reads them."""

    environment: str
    # A glob over stack names: "staging", "prod", "pr-*" (ephemeral PR stacks).
    stacks: str
    # Pull requests preview these stacks with the preview role (PR code), which can therefore
    # decrypt their secrets. Never true for a stack whose secrets a PR must not read (prod).
    previewed_by_pull_requests: bool = False
    # The nightly drift check refreshes these stacks (long-lived ones; PR stacks are swept).
    drift_checked: bool = False
    # Other deployers whose roles may decrypt this one's secrets: `pulumi stack init
    # --copy-config-from staging` (ephemeral.yml) reads staging's config.
    shared_with: tuple[str, ...] = ()

    @property
    def role_name(self) -> str:
        return f"{DEPLOY_ROLE_PREFIX}deploy-{self.environment}"

    @property
    def name_globs(self) -> tuple[str, ...]:
        """Physical-name patterns of this deployer's resources: `rag-platform-<stack>[-...]`.

        The separator after the stack name keeps `staging` from matching `staging2` and,
        above all, the PR glob `pr-*` from ever matching `prod`.
        """
        base = f"{PROJECT}-{self.stacks}"
        return (base, f"{base}-*", f"{base}/*")

    @property
    def secrets_alias(self) -> str:
        return f"{SECRETS_ALIAS_PREFIX}{self.environment}"

    @property
    def secrets_provider(self) -> str:
        """The `secretsprovider` of this deployer's stack files (the region is the job's AWS_REGION)."""
        return f"awskms://{self.secrets_alias}"


DEPLOYERS = (
    Deployer(
        "staging", "staging", previewed_by_pull_requests=True, drift_checked=True, shared_with=("ephemeral",)
    ),
    Deployer("production", "prod", drift_checked=True),
    Deployer("ephemeral", "pr-*"),
)


def deployer_for(stack: str) -> Deployer:
    found = [d for d in DEPLOYERS if fnmatch.fnmatchcase(stack, d.stacks)]
    if len(found) != 1:
        raise LookupError(f"no single deploy role deploys stack {stack!r}: {[d.environment for d in found]}")
    return found[0]
