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

from infra.stacks import EPHEMERAL_ENVIRONMENT, EPHEMERAL_SOURCE, EPHEMERAL_STACKS, read_stacks
from service.contract import OPENSEARCH_DOMAIN_NAME_MAX, PROJECT, fit_name

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
    # A stack of a protected tier: the permissions boundary keeps every other role off it.
    protected: bool = False

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
        globs: tuple[str, ...] = (base, f"{base}-*", f"{base}/*")
        # A name beyond its AWS limit ends in a hash instead (infra/naming.py): the search
        # domain of a long project name. A declared stack's is known, so it is granted exactly.
        domain = fit_name(base, OPENSEARCH_DOMAIN_NAME_MAX)
        if "*" not in self.stacks and domain != base:
            globs += (domain, f"{domain}/*")
        return globs

    @property
    def secrets_alias(self) -> str:
        return f"{SECRETS_ALIAS_PREFIX}{self.environment}"

    @property
    def secrets_provider(self) -> str:
        """The `secretsprovider` of this deployer's stack files (the region is the job's AWS_REGION)."""
        return f"awskms://{self.secrets_alias}"


def _deployers() -> tuple[Deployer, ...]:
    """One deploy role per stack file (infra/stacks.py), in deploy order, under its GitHub
    environment; then the role of the ephemeral per-PR stacks. A new `Pulumi.<stack>.yaml` gets
    its role here. Pull requests preview every stack but those of a protected tier (prod), whose
    secrets a PR must not read; the drift check covers every declared stack."""
    per_stack = tuple(
        Deployer(
            s.github_environment,
            s.name,
            previewed_by_pull_requests=not s.tier.protected,
            drift_checked=True,
            shared_with=(EPHEMERAL_ENVIRONMENT,) if s.name == EPHEMERAL_SOURCE else (),
            protected=s.tier.protected,
        )
        for s in read_stacks()
    )
    return (*per_stack, Deployer(EPHEMERAL_ENVIRONMENT, EPHEMERAL_STACKS))


DEPLOYERS = _deployers()
# Stacks of a `protected` tier (infra/tiers.yaml): the boundary keeps other roles off them.
PROTECTED = tuple(d for d in DEPLOYERS if d.protected)


def deployer_for(stack: str) -> Deployer:
    found = [d for d in DEPLOYERS if fnmatch.fnmatchcase(stack, d.stacks)]
    if len(found) != 1:
        raise LookupError(f"no single deploy role deploys stack {stack!r}: {[d.environment for d in found]}")
    return found[0]
