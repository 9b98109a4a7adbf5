"""`make cost`: each stack's monthly cost, estimated from its mocked inventory and `prices.yaml`.

Fixed costs (instance-hours, storage, endpoints, NAT, WAF, keys, alarms) are read from
what the program declares; usage costs (requests, GB-seconds) come from the per-stack
usage assumptions in the price file, which are printed with the result. Bedrock token
charges are not included: they depend on prompt sizes, not on infrastructure.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from infra.tools.offline import StackRun, run_stack, stack_file
from service.contract import PROJECT

PRICES = Path(__file__).with_name("prices.yaml")
STACKS = ("staging", "prod")
Line = tuple[str, float, str]


def _inputs(run: StackRun, token: str) -> list[dict[str, Any]]:
    return [r.inputs for r in run.of_type(token)]


def opensearch_lines(run: StackRun, p: dict[str, Any], hours: float) -> Iterator[Line]:
    for domain in _inputs(run, "aws:opensearch/domain:Domain"):
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


def lambda_lines(run: StackRun, p: dict[str, Any], u: dict[str, Any]) -> Iterator[Line]:
    workload = {
        "ingester": (u["documents_ingested"], u["ingest_seconds_per_document"]),
        "api": (u["queries"], u["api_seconds_per_query"]),
    }
    for fn in _inputs(run, "aws:lambda/function:Function"):
        role = "ingester" if fn["handler"].endswith("ingest.handler") else "api"
        calls, seconds = workload[role]
        gb_s = calls * seconds * fn["memorySize"] / 1024
        arch = fn["architectures"][0]
        cost = gb_s * p["lambda"]["gb_second"][arch] + calls / 1e6 * p["lambda"]["request_per_million"]
        yield f"Lambda {role}", cost, f"{calls:,} calls x {seconds}s x {fn['memorySize']} MB ({arch})"


def network_lines(run: StackRun, p: dict[str, Any], u: dict[str, Any], hours: float) -> Iterator[Line]:
    interface = [
        e for e in _inputs(run, "aws:ec2/vpcEndpoint:VpcEndpoint") if e["vpcEndpointType"] == "Interface"
    ]
    az_hours = sum(len(e["subnetIds"]) for e in interface) * hours
    rate = p["vpc_endpoint_interface"]
    yield (
        "VPC interface endpoints",
        az_hours * rate["hour_per_az"] + u["endpoint_gb"] * rate["gb_processed"],
        f"{len(interface)} endpoints, {az_hours / hours:.0f} endpoint-AZs",
    )
    nats = len(run.of_type("aws:ec2/natGateway:NatGateway"))
    if nats:
        nat = p["nat_gateway"]
        yield "NAT gateway", nats * hours * nat["hour"] + u["nat_gb"] * nat["gb_processed"], f"{nats} NAT"


def edge_lines(run: StackRun, p: dict[str, Any], u: dict[str, Any]) -> Iterator[Line]:
    queries = u["queries"] / 1e6
    yield (
        "API Gateway HTTP API",
        queries * p["api_gateway_http"]["request_per_million"],
        f"{u['queries']:,} requests",
    )
    for acl in _inputs(run, "aws:wafv2/webAcl:WebAcl"):
        w = p["waf"]
        rules = len(acl.get("rules", []))
        yield (
            "WAF",
            w["web_acl_month"] + rules * w["rule_month"] + queries * w["request_per_million"],
            f"{rules} rules",
        )
    if run.of_type("aws:cloudfront/distribution:Distribution"):
        c = p["cloudfront"]
        yield (
            "CloudFront",
            queries * c["https_request_per_million"] + u["cdn_gb_out"] * c["gb_out"],
            "requests + egress",
        )


def data_lines(run: StackRun, p: dict[str, Any], u: dict[str, Any]) -> Iterator[Line]:
    docs = u["documents_ingested"]
    yield (
        "SQS",
        docs * u["sqs_requests_per_document"] / 1e6 * p["sqs"]["request_per_million"],
        f"{docs:,} documents",
    )
    yield (
        "S3 storage",
        u["stored_documents_gb"] * p["s3"]["standard_gb_month"],
        f"{u['stored_documents_gb']} GB",
    )
    d = p["dynamodb_on_demand"]
    for table in _inputs(run, "aws:dynamodb/table:Table"):
        pitr = (table.get("pointInTimeRecovery") or {}).get("enabled", False)
        gb = u["ledger_items_gb"]
        cost = docs * 3 / 1e6 * d["write_per_million"] + u["queries"] / 1e6 * d["read_per_million"]
        cost += gb * (d["gb_month"] + (d["pitr_gb_month"] if pitr else 0))
        yield "DynamoDB ledger", cost, f"on-demand, PITR {'on' if pitr else 'off'}"


def fixed_lines(run: StackRun, p: dict[str, Any], u: dict[str, Any]) -> Iterator[Line]:
    keys = len(run.of_type("aws:kms/key:Key"))
    secrets = len(run.of_type("aws:secretsmanager/secret:Secret"))
    alarms = len(run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm"))
    dashboards = len(run.of_type("aws:cloudwatch/dashboard:Dashboard"))
    cw = p["cloudwatch"]
    yield (
        "KMS + Secrets Manager",
        keys * p["kms"]["key_month"] + secrets * p["secrets_manager"]["secret_month"],
        "",
    )
    yield (
        "CloudWatch",
        alarms * cw["alarm_month"] + dashboards * cw["dashboard_month"] + u["log_gb"] * cw["logs_ingest_gb"],
        f"{alarms} alarms, {u['log_gb']} GB logs",
    )


def budget_usd(stack: str) -> float | None:
    """The stack's configured monthly budget (observability.monthlyBudgetUsd)."""
    config = yaml.safe_load(stack_file(stack).read_text()).get("config", {})
    value = config.get(f"{PROJECT}:observability", {}).get("monthlyBudgetUsd")
    return float(value) if value is not None else None


def estimate(stack: str, prices: dict[str, Any]) -> list[Line]:
    run = run_stack(stack)
    usage = prices["usage"].get(stack, prices["usage"]["default"])
    hours = prices["hours_per_month"]
    return [
        *opensearch_lines(run, prices, hours),
        *lambda_lines(run, prices, usage),
        *network_lines(run, prices, usage, hours),
        *edge_lines(run, prices, usage),
        *data_lines(run, prices, usage),
        *fixed_lines(run, prices, usage),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stacks", nargs="+", default=list(STACKS))
    args = parser.parse_args(argv)
    prices = yaml.safe_load(PRICES.read_text())
    print(
        f"Prices: {prices['source']}, as of {prices['as_of']} ({PRICES.name}); "
        f"{prices['hours_per_month']} h/month; Bedrock tokens and data transfer out of AWS not included."
    )
    totals: dict[str, float] = {}
    for stack in args.stacks:
        usage = prices["usage"].get(stack, prices["usage"]["default"])
        print(f"\n== {stack} ==  assumptions: " + ", ".join(f"{k}={v}" for k, v in usage.items()))
        lines = estimate(stack, prices)
        for item, cost, detail in lines:
            print(f"  {item:<30} ${cost:>10,.2f}  {detail}")
        totals[stack] = sum(cost for _, cost, _ in lines)
        print(f"  {'TOTAL':<30} ${totals[stack]:>10,.2f} / month")
        budget = budget_usd(stack)
        if budget is not None and totals[stack] > budget:
            print(f"  WARNING: estimate exceeds the stack's monthly budget (${budget:,.2f})")
    if len(totals) > 1:
        low, high = min(totals, key=totals.__getitem__), max(totals, key=totals.__getitem__)
        delta = totals[high] - totals[low]
        print(
            f"\nDIFFERENCE: {high} costs ${delta:,.2f}/month more than {low} "
            f"({totals[high] / max(totals[low], 0.01):.1f}x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
