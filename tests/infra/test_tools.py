"""The review tools: inventory, diff, Terraform-plan conversion, cost, packaging, import time."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from infra.stacks import ROOT, read_tiers
from infra.tools import cost, diff_inventory, importtime, offline, package, security_scan, tfplan
from infra.tools.inventory import inventory
from infra.tools.offline import StackRun
from service.contract import PROJECT


def test_inventory_lists_resources_with_parents_and_masks_secrets() -> None:
    # Given the prod inventory
    doc = inventory("prod")
    # Then it is one JSON document with types, names, parents and masked secrets
    json.dumps(doc)
    by_name = {r["name"]: r for r in doc["resources"]}
    assert by_name["search-domain"]["type"] == "aws:opensearch/domain:Domain"
    assert by_name["search-domain"]["parent"] == "search"
    # The program sends '["[secret]"]'; only the wire-level secret marker turns it into this.
    assert by_name["api-keys-version"]["inputs"]["secretString"] == "[secret]"


def test_diff_reports_added_removed_and_changed_properties() -> None:
    # Given a base and a head inventory
    base = {
        "resources": [
            {"type": "t", "name": "a", "inputs": {"x": 1, "policy": '{"A": [1]}'}},
            {"type": "t", "name": "gone", "inputs": {}},
        ]
    }
    head = {
        "resources": [
            {"type": "t", "name": "a", "inputs": {"x": 2, "policy": '{"A": [2]}'}},
            {"type": "t", "name": "new", "inputs": {}},
        ]
    }
    # When diffed
    lines = diff_inventory.diff_documents(base, head)
    # Then every kind of change is shown, with JSON policies expanded by path
    assert "+ t new" in lines
    assert "- t gone" in lines
    assert "~ t a" in lines
    assert "    x: 1 -> 2" in lines
    assert "    policy.A[0]: 1 -> 2" in lines


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("aws:s3/bucket:Bucket", "aws_s3_bucket"),
        ("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "aws_s3_bucket_public_access_block"),
        ("aws:ec2/vpc:Vpc", "aws_vpc"),
        ("aws:ec2/vpcEndpoint:VpcEndpoint", "aws_vpc_endpoint"),
        ("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "aws_vpc_security_group_ingress_rule"),
        ("aws:lambda/eventSourceMapping:EventSourceMapping", "aws_lambda_event_source_mapping"),
        ("aws:apigatewayv2/stage:Stage", "aws_apigatewayv2_stage"),
        ("aws:sqs/redriveAllowPolicy:RedriveAllowPolicy", "aws_sqs_queue_redrive_allow_policy"),
        ("ragplatform:search:SearchCluster", None),
    ],
)
def test_terraform_type_mapping(token: str, expected: str | None) -> None:
    assert tfplan.terraform_type(token) == expected


def test_plan_conversion_renames_and_links(staging: StackRun) -> None:
    # Given the staging run converted to a Terraform plan
    plan = tfplan.to_plan([asdict(r) for r in staging.resources])
    values = {r["address"]: r["values"] for r in plan["planned_values"]["root_module"]["resources"]}
    config = {r["address"]: r["expressions"] for r in plan["configuration"]["root_module"]["resources"]}
    # Then blocks are lists, names snake_case, map keys kept, and references point at the bucket
    domain = values["aws_opensearch_domain.search_domain"]
    assert domain["node_to_node_encryption"] == [{"enabled": True}]
    assert domain["tags"]["cost-center"] == f"{PROJECT}-staging"
    assert "rule" in values["aws_s3_bucket_server_side_encryption_configuration.documents_encryption"]
    assert values["aws_s3_bucket_versioning.documents_versioning"]["bucket"] is None
    refs = config["aws_s3_bucket_versioning.documents_versioning"]["bucket"]["references"]
    assert refs == ["aws_s3_bucket.documents_bucket.id", "aws_s3_bucket.documents_bucket"]


def test_every_waiver_has_a_reason_and_matching_is_scoped() -> None:
    waivers = security_scan.load_waivers()
    assert all(w["reason"].strip() for w in waivers.values())
    # Waivers name tiers, not stacks: a stack is waived by its tier (infra/tiers.yaml)
    assert security_scan.is_waived("CKV_AWS_28", "aws_dynamodb_table.ledger_table", "staging", waivers)
    assert security_scan.is_waived("CKV_AWS_28", "aws_dynamodb_table.ledger_table", "dev", waivers)
    assert not security_scan.is_waived("CKV_AWS_28", "aws_dynamodb_table.ledger_table", "prod", waivers)
    assert not security_scan.is_waived("CKV_AWS_999", "aws_s3_bucket.x", "prod", waivers)
    known = {t.name for t in read_tiers()}
    assert all(set(w.get("tiers", [])) <= known for w in waivers.values())


def test_a_stack_is_scanned_with_the_waivers_of_the_tier_its_config_names(tmp_path: Path) -> None:
    # Given the committed stacks, a new stack file `qa` written from staging's, and a PR stack
    overlay = tmp_path / "qa.yaml"
    overlay.write_text("config: {}\n")
    with offline.overlaid("qa", overlay):
        # When the scan asks each its tier, Then it is the one its config names
        tiers = {s: security_scan.stack_tier(s) for s in ("prod", "staging", "qa", "pr-7")}
    assert tiers == {"prod": "prod", "staging": "staging", "qa": "staging", "pr-7": "staging"}


def test_cost_reflects_each_stack() -> None:
    prices = yaml.safe_load(cost.PRICES.read_text())
    staging = {item: value for item, value, _ in cost.estimate("staging", prices)}
    prod = {item: value for item, value, _ in cost.estimate("prod", prices)}
    # One t3.small node in staging; three data nodes plus three masters in prod
    assert staging["OpenSearch data nodes"] == pytest.approx(0.036 * 730)
    assert "OpenSearch dedicated masters" not in staging
    assert prod["OpenSearch data nodes"] == pytest.approx(3 * 0.167 * 730)
    assert "NAT gateway" not in staging
    assert "WAF" in prod
    assert sum(prod.values()) > sum(staging.values())


def test_zip_is_reproducible(tmp_path: Path) -> None:
    # Given the same tree written twice with different mtimes
    source = tmp_path / "src"
    (source / "pkg").mkdir(parents=True)
    (source / "pkg" / "a.py").write_text("x = 1\n")
    (source / "pkg" / "__pycache__").mkdir()
    (source / "pkg" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"junk")
    first, second = tmp_path / "1.zip", tmp_path / "2.zip"
    package.write_zip(source, first)
    (source / "pkg" / "a.py").touch()
    package.write_zip(source, second)
    # Then the bytes are identical and bytecode is left out
    assert hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()
    import zipfile

    assert zipfile.ZipFile(first).namelist() == ["pkg/a.py"]


def test_package_targets_lambda_platform_wheels() -> None:
    runtime, arch, _artifact = package.target_platform()
    assert (runtime, arch) == ("python3.12", "arm64")
    args = package.pip_platform_args(runtime, arch)
    assert "--only-binary=:all:" in args
    assert "manylinux2014_aarch64" in args
    assert "3.12" in args
    assert not [d for d in package.dependencies() if d.startswith("torch")]
    assert package.shipped(["boto3==1", "pydantic==2"]) == ["pydantic==2"]


def test_importtime_sums_self_time_per_top_level_package() -> None:
    # Given -X importtime lines, nested and top-level, among a handler's log lines
    stderr = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:    300000 |     300000 |     pydantic.main\n"
        '{"level": "INFO", "message": "a log line"}\n'
        "import time:    200000 |     500000 |   pydantic\n"
        "import time:    100000 |     100000 | fastapi\n"
    )
    # Then self times add up per top-level package, slowest first
    assert importtime.heaviest_packages(stderr, count=2) == [("pydantic", 0.5), ("fastapi", 0.1)]


def test_package_out_outside_the_repository_writes_zip_and_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a build whose dependency install is replaced (the service code is still copied)
    monkeypatch.setattr(package, "resolve_lock", lambda runtime, arch: ["pydantic==2.0"])
    monkeypatch.setattr(package, "install", lambda pins, runtime, arch, target: target.mkdir(exist_ok=True))
    out = tmp_path / "x.zip"
    # When `package --out` names a path outside the repository (issue 13: it crashed after writing)
    status = package.main(["--out", str(out)])
    # Then the zip and its manifest are written, naming the artifact by its absolute path
    assert status == 0
    manifest = json.loads(out.with_suffix(".manifest.json").read_text())
    assert manifest["artifact"] == str(out.resolve())
    assert manifest["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    # and the unpacked artifact knows the project's name from the Pulumi.yaml it carries
    unpacked = tmp_path / "unpacked"
    zipfile.ZipFile(out).extractall(unpacked)
    where, name = subprocess.run(
        [sys.executable, "-c", "import service.contract as c; print(c.__file__, c.PROJECT)"],
        cwd=unpacked,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert (Path(where).resolve().parent.parent, name) == (unpacked.resolve(), PROJECT)


def test_cost_warns_loudly_for_a_region_without_prices(tmp_path: Path) -> None:
    # Given a dev stack written from staging's file, in a region prices.yaml has no table for
    prices = yaml.safe_load(cost.PRICES.read_text())
    region = "eu-west-1"
    assert region not in prices["regions"], "eu-west-1 has a table now: pick a region without one"
    dev = (ROOT / "Pulumi.staging.yaml").read_text().replace("aws:region: us-east-1", f"aws:region: {region}")
    (tmp_path / "Pulumi.dev.yaml").write_text(dev)
    facts = cost.StackFacts.read("dev", tmp_path)
    # When it is estimated
    result = cost.estimate_document({"resources": []}, facts, prices)
    # Then the report says, above the figures, that the region was priced at another's rates
    lines = cost.report(result)
    warning = next(line for line in lines if "WARNING" in line)
    assert f"no price table for {region}" in warning
    assert prices["fallback_region"] in warning
    assert lines.index(warning) < next(i for i, line in enumerate(lines) if "TOTAL" in line)
