"""The PR review tools a platform engineer reads: a stable inventory diff, the stack list, and a
cost estimate with usage, region, budget and the change's own delta."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.config import UsageConfig
from infra.stacks import stack_names
from infra.tools import cost, diff_inventory

USAGE = UsageConfig.model_validate(
    {
        "documentsIngested": 1000,
        "chunksPerDocument": 10,
        "queries": 10_000,
        "promptTokensPerQuery": 3000,
        "completionTokensPerQuery": 300,
        "embeddingTokensPerChunk": 250,
        "ingestSecondsPerDocument": 4,
        "apiSecondsPerQuery": 1.5,
        "sqsRequestsPerDocument": 4,
        "storedDocumentsGb": 1,
        "ledgerItemsGb": 0.1,
        "logGb": 1,
        "natGb": 0,
        "endpointGb": 0,
        "cdnGbOut": 0,
    }
)
PRICES: dict[str, Any] = yaml.safe_load(cost.PRICES.read_text())


def _role(statements: list[dict[str, Any]], path: str = "/tmp/x/build/a.zip") -> dict[str, Any]:
    policy = json.dumps({"Version": "2012-10-17", "Statement": statements})
    return {
        "resources": [{"type": "aws:iam/rolePolicy:RolePolicy", "name": "api", "inputs": {"policy": policy}}]
    }


READ = {"Sid": "ReadBucket", "Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"}
SEND = {"Sid": "SendDlq", "Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "arn:q"}


def test_one_added_statement_is_one_block_not_a_cascade_of_index_shifts() -> None:
    # Given a policy gaining one statement in front of the others
    base, head = _role([READ, SEND]), _role([{**SEND, "Sid": "First", "Action": "kms:Decrypt"}, READ, SEND])
    # When diffed
    lines = diff_inventory.diff_documents(base, head)
    # Then only the new statement's own paths appear, keyed by its Sid
    changed = [line for line in lines if line.startswith("    ")]
    assert changed
    assert all("Statement[First]" in line for line in changed), changed


def test_reordered_actions_and_checkout_paths_are_no_change() -> None:
    # Given the same policy with its action list reordered, read from two different checkouts
    base = {
        "resources": [{"type": "t", "name": "f", "inputs": {"code": {"path": "/tmp/base-1/build/a.zip"}}}]
    }
    head = {"resources": [{"type": "t", "name": "f", "inputs": {"code": {"path": "/work/repo/build/a.zip"}}}]}
    assert diff_inventory.diff_documents(base, head, base_root="/tmp/base-1", head_root="/work/repo") == []
    reordered = _role([{**READ, "Action": list(reversed(READ["Action"]))}])
    assert diff_inventory.diff_documents(_role([READ]), reordered) == []


def test_statements_without_a_sid_are_keyed_by_their_content() -> None:
    anonymous = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}
    lines = diff_inventory.diff_documents(_role([anonymous]), _role([SEND, anonymous]))
    assert all("SendDlq" in line for line in lines if line.startswith("    "))


def test_stacks_are_the_stack_files(tmp_path: Path) -> None:
    for name in ("Pulumi.yaml", "Pulumi.prod.yaml", "Pulumi.dev.yaml", "Pulumi.staging.yaml", "notes.yaml"):
        (tmp_path / name).write_text("config: {}\n")
    assert stack_names(tmp_path) == ("dev", "prod", "staging")
    assert set(stack_names()) >= {"staging", "prod"}


def _facts(
    region: str = "us-east-1", budget: float | None = 100.0, model: str = "amazon.nova-pro-v1:0"
) -> Any:
    return cost.StackFacts("dev", region, USAGE, budget, model, "amazon.titan-embed-text-v2:0", 1024)


def _inventory(nodes: int = 1) -> dict[str, Any]:
    domain = {
        "clusterConfig": {"instanceCount": nodes, "instanceType": "t3.small.search"},
        "ebsOptions": {"volumeSize": 10, "volumeType": "gp3"},
    }
    return {"resources": [{"type": "aws:opensearch/domain:Domain", "inputs": domain}]}


def test_bedrock_tokens_are_priced_from_the_stacks_usage_and_model() -> None:
    lines = {
        item: (usd, detail)
        for item, usd, detail in cost.estimate_document(_inventory(), _facts(), PRICES).lines
    }
    # 10,000 queries x 3,000 prompt tokens at $0.0008/1k + x 300 completion tokens at $0.0032/1k
    assert lines["Bedrock generation"][0] == pytest.approx(30e6 / 1000 * 0.0008 + 3e6 / 1000 * 0.0032)
    # An inference-profile id is priced as its model
    profile = cost.estimate_document(_inventory(), _facts(model="us.amazon.nova-pro-v1:0"), PRICES)
    assert dict((i, u) for i, u, _ in profile.lines)["Bedrock generation"] == lines["Bedrock generation"][0]


def test_a_model_without_a_price_is_named_not_silently_free() -> None:
    result = cost.estimate_document(_inventory(), _facts(model="mistral.unknown-v9"), PRICES)
    detail = {i: d for i, _, d in result.lines}["Bedrock generation"]
    assert "WARNING: no price for mistral.unknown-v9" in detail


def test_a_region_without_prices_is_priced_at_the_fallback_with_a_loud_warning() -> None:
    result = cost.estimate_document(_inventory(), _facts(region="eu-west-1"), PRICES)
    assert result.warning is not None
    assert "eu-west-1" in result.warning
    assert "WARNING" in "\n".join(cost.report(result))
    assert cost.estimate_document(_inventory(), _facts(), PRICES).warning is None


def test_index_growth_warns_when_the_volume_will_not_hold_it() -> None:
    facts = _facts()
    small = {i: d for i, _, d in cost.estimate_document(_inventory(), facts, PRICES).lines}
    assert small["OpenSearch index growth"].startswith("fits")
    big = cost.StackFacts(
        "dev",
        "us-east-1",
        USAGE.model_copy(update={"documents_ingested": 10**6}),
        100.0,
        facts.generator_model,
        facts.embedding_model,
        1024,
    )
    grown = {i: d for i, _, d in cost.estimate_document(_inventory(), big, PRICES).lines}
    assert grown["OpenSearch index growth"].startswith("WARNING: outgrows")


def test_the_budget_check_fails_the_run_when_a_stack_costs_more(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a stack whose estimate exceeds its budget
    monkeypatch.setattr(cost, "inventory", lambda stack: _inventory())
    monkeypatch.setattr(
        cost.StackFacts, "read", classmethod(lambda cls, stack, root=None: _facts(budget=1.0))
    )
    # When `make cost` runs, then it exits 1 naming the stack
    assert cost.main(["--stacks", "dev"]) == 1
    monkeypatch.setattr(
        cost.StackFacts, "read", classmethod(lambda cls, stack, root=None: _facts(budget=1e6))
    )
    assert cost.main(["--stacks", "dev"]) == 0


def test_committed_stacks_state_their_usage_and_are_within_budget() -> None:
    for stack in stack_names():
        facts = cost.StackFacts.read(stack)
        assert facts.budget is not None
        assert facts.usage.queries > 0
