"""The rag-platform policy pack: `pulumi preview --policy-pack infra/policy -s staging`."""

from __future__ import annotations

import sys
from pathlib import Path

# The CLI runs the pack from infra/policy; the rules import `infra.*` from the repo root.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pulumi_policy import PolicyPack

from infra.policy.rules import policies

PolicyPack(name="rag-platform-guardrails", policies=policies())
