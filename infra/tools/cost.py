"""`make cost [BASE=<ref>]`: each stack's monthly cost, what this change adds, and the budget check.

- Fixed costs (instance-hours, storage, endpoints, NAT, WAF, keys, alarms) come from what the
  program declares, read from the stack's mocked inventory.
- Usage costs (requests, GB-seconds, Bedrock tokens) come from the assumptions each stack
  states in its own file (`rag-platform:usage`, validated by `infra.config.UsageConfig`), and
  are printed with the result. The index-size estimate says whether the provisioned storage
  holds `monthsOfGrowth` months of ingestion.
- Prices are per region (`prices.yaml`); a region without a table is priced at the fallback
  region's rates with a loud warning.
- With `--base REF`, the base's inventory and stack files are priced with the same price table,
  so the delta is this change's, not the difference between two stacks.
- The total is compared with the stack's `observability.monthlyBudgetUsd`: over budget exits 1.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.config import UsageConfig
from infra.stacks import ROOT, stack_names
from infra.tools.diff_inventory import base_inventory, export_ref
from infra.tools.inventory import inventory
from service.contract import PROJECT

PRICES = Path(__file__).with_name("prices.yaml")
Line = tuple[str, float, str]
# Share of the provisioned volume the index may fill before the free-storage alarm is near.
STORAGE_HEADROOM = 0.75
# Stored text, metadata and inverted index per chunk, beside its vector.
TEXT_BYTES_PER_CHUNK = 2_000
# Tokens of a question embedded for retrieval.
QUERY_EMBEDDING_TOKENS = 30


@dataclass(frozen=True)
class StackFacts:
    """What one stack's file says that the estimate needs."""

    stack: str
    region: str
    usage: UsageConfig
    budget: float | None
    generator_model: str | None
    embedding_model: str | None
    embedding_dimension: int
    # Replicas per index (`search.replicas`); a stack file from before that key existed is
    # priced as the engine's default behaved: one replica when there is a node to hold it.
    replicas: int = 0

    @classmethod
    def read(cls, stack: str, root: Path = ROOT) -> StackFacts:
        config = yaml.safe_load((root / f"Pulumi.{stack}.yaml").read_text()).get("config", {})
        models = config.get(f"{PROJECT}:models", {})
        budget = config.get(f"{PROJECT}:observability", {}).get("monthlyBudgetUsd")
        search = config.get(f"{PROJECT}:search", {})
        replicas = search.get("replicas", 1 if search.get("instanceCount", 1) > 1 else 0)
        return cls(
            stack=stack,
            region=str(config.get("aws:region", "")),
            usage=UsageConfig.model_validate(config.get(f"{PROJECT}:usage", {})),
            budget=float(budget) if budget is not None else None,
            generator_model=models.get("generatorModelId"),
            embedding_model=models.get("embeddingModelId"),
            embedding_dimension=int(models.get("embeddingDimension", 1024)),
            replicas=int(replicas),
        )


class Resources:
    """An inventory document's resource inputs, by type token."""

    def __init__(self, document: dict[str, Any]) -> None:
        self._resources = document.get("resources", [])

    def of_type(self, token: str) -> list[dict[str, Any]]:
        return [r["inputs"] for r in self._resources if r["type"] == token]


def price_table(prices: dict[str, Any], region: str) -> tuple[dict[str, Any], str | None]:
    """The region's prices, and a warning when there is no table for it."""
    regions = prices["regions"]
    if region in regions:
        return regions[region], None
    fallback = prices["fallback_region"]
    return regions[fallback], (
        f"WARNING: no price table for {region or '(no region)'}: priced at {fallback} rates. "
        f"Add `{region}` to {PRICES.name}."
    )


def opensearch_lines(res: Resources, p: dict[str, Any], hours: float) -> Iterator[Line]:
    for domain in res.of_type("aws:opensearch/domain:Domain"):
        cluster, ebs = domain["clusterConfig"], domain["ebsOptions"]
        rates = p["opensearch"]["instance_hour"]
        count, kind = cluster["instanceCount"], cluster["instanceType"]
        yield "OpenSearch data nodes", count * rates[kind] * hours, f"{count} x {kind}"
        masters = cluster.get("dedicatedMasterCount") or 0
        if cluster.get("dedicatedMasterEnabled"):
            mkind = cluster["dedicatedMasterType"]
            yield "OpenSearch dedicated masters", masters * rates[mkind] * hours, f"{masters} x {mkind}"
        gb = ebs["volumeSize"] * count
        yield (
            "OpenSearch storage",
            gb * p["opensearch"][f"{ebs['volumeType']}_gb_month"],
            f"{gb} GB {ebs['volumeType']}",
        )


def index_size_gb(facts: StackFacts, replicas: int) -> float:
    """Index size after `monthsOfGrowth` months, from AWS's HNSW sizing rule of thumb:
    1.1 x (4 x dimension + 8 x M) bytes per vector, M = 16
    (https://docs.aws.amazon.com/opensearch-service/latest/developerguide/knn.html)."""
    u = facts.usage
    chunks = u.documents_ingested * u.months_of_growth * u.chunks_per_document
    per_chunk = 1.1 * (4 * facts.embedding_dimension + 8 * 16) + TEXT_BYTES_PER_CHUNK
    return chunks * per_chunk * (1 + replicas) / 1e9


def growth_lines(res: Resources, facts: StackFacts) -> Iterator[Line]:
    for domain in res.of_type("aws:opensearch/domain:Domain"):
        count = domain["clusterConfig"]["instanceCount"]
        provisioned = domain["ebsOptions"]["volumeSize"] * count
        estimate = index_size_gb(facts, replicas=facts.replicas)
        verdict = "fits" if estimate <= STORAGE_HEADROOM * provisioned else "WARNING: outgrows"
        yield (
            "OpenSearch index growth",
            0.0,
            f"{verdict}: ~{estimate:,.1f} GB after {facts.usage.months_of_growth} months "
            f"of {provisioned} GB provisioned",
        )


def _role(handler: str) -> str | None:
    if "ingest" in handler:
        return "ingester"
    if "api" in handler:
        return "api"
    return None  # run on deploy only (e.g. provisioning): no monthly usage


def lambda_lines(res: Resources, p: dict[str, Any], u: UsageConfig) -> Iterator[Line]:
    workload = {
        "ingester": (u.documents_ingested, u.ingest_seconds_per_document),
        "api": (u.queries, u.api_seconds_per_query),
    }
    for fn in res.of_type("aws:lambda/function:Function"):
        role = _role(str(fn.get("handler", "")))
        if role is None:
            continue
        calls, seconds = workload[role]
        gb_s = calls * seconds * fn["memorySize"] / 1024
        arch = fn["architectures"][0]
        cost = gb_s * p["lambda"]["gb_second"][arch] + calls / 1e6 * p["lambda"]["request_per_million"]
        yield f"Lambda {role}", cost, f"{calls:,} calls x {seconds}s x {fn['memorySize']} MB ({arch})"


def _model_price(p: dict[str, Any], model: str | None) -> dict[str, float] | None:
    if not model:
        return None
    table: dict[str, dict[str, float]] = p.get("bedrock", {})
    # Cross-region inference profiles prefix the model id with a geography ("us.", "eu.", "apac.").
    return table.get(model) or table.get(model.split(".", 1)[-1])


def bedrock_lines(p: dict[str, Any], facts: StackFacts) -> Iterator[Line]:
    u = facts.usage
    generator = _model_price(p, facts.generator_model)
    if generator is None:
        yield "Bedrock generation", 0.0, f"WARNING: no price for {facts.generator_model}: not counted"
    else:
        prompt, completion = u.queries * u.prompt_tokens_per_query, u.queries * u.completion_tokens_per_query
        cost = prompt / 1000 * generator["input"] + completion / 1000 * generator["output"]
        yield (
            "Bedrock generation",
            cost,
            f"{facts.generator_model}: {prompt:,} prompt + {completion:,} completion tokens",
        )
    embedder = _model_price(p, facts.embedding_model)
    tokens = int(
        u.documents_ingested * u.chunks_per_document * u.embedding_tokens_per_chunk
        + u.queries * QUERY_EMBEDDING_TOKENS
    )
    if embedder is None:
        yield "Bedrock embeddings", 0.0, f"WARNING: no price for {facts.embedding_model}: not counted"
    else:
        yield (
            "Bedrock embeddings",
            tokens / 1000 * embedder["input"],
            f"{facts.embedding_model}: {tokens:,} tokens",
        )


def network_lines(res: Resources, p: dict[str, Any], u: UsageConfig, hours: float) -> Iterator[Line]:
    interface = [
        e for e in res.of_type("aws:ec2/vpcEndpoint:VpcEndpoint") if e["vpcEndpointType"] == "Interface"
    ]
    az_hours = sum(len(e["subnetIds"]) for e in interface) * hours
    rate = p["vpc_endpoint_interface"]
    yield (
        "VPC interface endpoints",
        az_hours * rate["hour_per_az"] + u.endpoint_gb * rate["gb_processed"],
        f"{len(interface)} endpoints, {az_hours / hours:.0f} endpoint-AZs",
    )
    nats = len(res.of_type("aws:ec2/natGateway:NatGateway"))
    if nats:
        nat = p["nat_gateway"]
        yield "NAT gateway", nats * hours * nat["hour"] + u.nat_gb * nat["gb_processed"], f"{nats} NAT"


def edge_lines(res: Resources, p: dict[str, Any], u: UsageConfig) -> Iterator[Line]:
    queries = u.queries / 1e6
    yield (
        "API Gateway HTTP API",
        queries * p["api_gateway_http"]["request_per_million"],
        f"{u.queries:,} requests",
    )
    for acl in res.of_type("aws:wafv2/webAcl:WebAcl"):
        w = p["waf"]
        rules = len(acl.get("rules", []))
        yield (
            "WAF",
            w["web_acl_month"] + rules * w["rule_month"] + queries * w["request_per_million"],
            f"{rules} rules",
        )
    if res.of_type("aws:cloudfront/distribution:Distribution"):
        c = p["cloudfront"]
        yield (
            "CloudFront",
            queries * c["https_request_per_million"] + u.cdn_gb_out * c["gb_out"],
            "requests + egress",
        )


def data_lines(res: Resources, p: dict[str, Any], u: UsageConfig) -> Iterator[Line]:
    docs = u.documents_ingested
    yield (
        "SQS",
        docs * u.sqs_requests_per_document / 1e6 * p["sqs"]["request_per_million"],
        f"{docs:,} documents",
    )
    yield "S3 storage", u.stored_documents_gb * p["s3"]["standard_gb_month"], f"{u.stored_documents_gb} GB"
    d = p["dynamodb_on_demand"]
    for table in res.of_type("aws:dynamodb/table:Table"):
        pitr = (table.get("pointInTimeRecovery") or {}).get("enabled", False)
        cost = docs * 3 / 1e6 * d["write_per_million"] + u.queries / 1e6 * d["read_per_million"]
        cost += u.ledger_items_gb * (d["gb_month"] + (d["pitr_gb_month"] if pitr else 0))
        yield "DynamoDB ledger", cost, f"on-demand, PITR {'on' if pitr else 'off'}"


def fixed_lines(res: Resources, p: dict[str, Any], u: UsageConfig) -> Iterator[Line]:
    keys = len(res.of_type("aws:kms/key:Key"))
    secrets = len(res.of_type("aws:secretsmanager/secret:Secret"))
    alarms = len(res.of_type("aws:cloudwatch/metricAlarm:MetricAlarm"))
    dashboards = len(res.of_type("aws:cloudwatch/dashboard:Dashboard"))
    cw = p["cloudwatch"]
    yield (
        "KMS + Secrets Manager",
        keys * p["kms"]["key_month"] + secrets * p["secrets_manager"]["secret_month"],
        "",
    )
    yield (
        "CloudWatch",
        alarms * cw["alarm_month"] + dashboards * cw["dashboard_month"] + u.log_gb * cw["logs_ingest_gb"],
        f"{alarms} alarms, {u.log_gb} GB logs",
    )


@dataclass(frozen=True)
class Estimate:
    facts: StackFacts
    lines: list[Line]
    warning: str | None

    @property
    def total(self) -> float:
        return sum(cost for _, cost, _ in self.lines)

    @property
    def over_budget(self) -> bool:
        return self.facts.budget is not None and self.total > self.facts.budget


def estimate_document(document: dict[str, Any], facts: StackFacts, prices: dict[str, Any]) -> Estimate:
    res = Resources(document)
    p, warning = price_table(prices, facts.region)
    u, hours = facts.usage, prices["hours_per_month"]
    lines = [
        *opensearch_lines(res, p, hours),
        *growth_lines(res, facts),
        *lambda_lines(res, p, u),
        *bedrock_lines(p, facts),
        *network_lines(res, p, u, hours),
        *edge_lines(res, p, u),
        *data_lines(res, p, u),
        *fixed_lines(res, p, u),
    ]
    return Estimate(facts, lines, warning)


def estimate(stack: str, prices: dict[str, Any]) -> list[Line]:
    """The working tree's estimate for `stack`, as (item, USD per month, detail) lines."""
    return estimate_document(inventory(stack), StackFacts.read(stack), prices).lines


def report(result: Estimate) -> list[str]:
    facts = result.facts
    out = [f"\n== {facts.stack} ({facts.region}) ==  assumptions ({PROJECT}:usage):"]
    out.append("  " + ", ".join(f"{k}={v}" for k, v in facts.usage.model_dump(by_alias=True).items()))
    if result.warning:
        out.append(f"  {result.warning}")
    out += [f"  {item:<30} ${cost:>10,.2f}  {detail}" for item, cost, detail in result.lines]
    out.append(f"  {'TOTAL':<30} ${result.total:>10,.2f} / month")
    if facts.budget is None:
        out.append("  budget: none configured")
    else:
        verdict = "OVER BUDGET" if result.over_budget else "within budget"
        out.append(f"  budget: ${facts.budget:,.2f} / month: {verdict}")
    return out


def _base_estimate(ref: str, stack: str, workdir: Path, prices: dict[str, Any]) -> Estimate | None:
    if not (workdir / f"Pulumi.{stack}.yaml").exists():
        return None
    try:
        facts = StackFacts.read(stack, workdir)
    except ValueError:
        facts = StackFacts.read(stack)  # the base states no usage yet: price it with this change's
    return estimate_document(base_inventory(ref, stack, workdir), facts, prices)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stacks", nargs="+", default=list(stack_names()))
    parser.add_argument("--base", help="git ref to compare with (e.g. origin/main)")
    args = parser.parse_args(argv)
    prices = yaml.safe_load(PRICES.read_text())
    print(
        f"Prices: {prices['source']}, as of {prices['as_of']} ({PRICES.name}); "
        f"{prices['hours_per_month']} h/month; data transfer out of AWS not included."
    )
    heads = {s: estimate_document(inventory(s), StackFacts.read(s), prices) for s in args.stacks}
    for result in heads.values():
        print("\n".join(report(result)))
    if args.base:
        print(f"\n== cost of this change against {args.base} ==")
        with tempfile.TemporaryDirectory(prefix="infra-base-") as tmp:
            export_ref(args.base, Path(tmp))
            for stack, head in heads.items():
                base = _base_estimate(args.base, stack, Path(tmp), prices)
                before = base.total if base else 0.0
                label = "new stack" if base is None else f"${before:,.2f}"
                print(f"  {stack:<12} {label} -> ${head.total:,.2f} / month ({head.total - before:+,.2f})")
    over = [s for s, r in heads.items() if r.over_budget]
    if over:
        print(f"\nOVER BUDGET: {', '.join(over)} (raise the budget or change the stack)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
