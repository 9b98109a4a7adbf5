"""Each component's resources and properties, per environment, from whole-stack mock runs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.iam import UNSCOPED_ACTIONS
from infra.tools.offline import StackRun
from service.contract import Env, Output

DOMAIN = "aws:opensearch/domain:Domain"
FUNCTION = "aws:lambda/function:Function"


def policy(record_inputs: dict[str, Any], key: str = "policy") -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(record_inputs[key])
    return parsed


# --- search -------------------------------------------------------------------------------
@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_search_is_encrypted_private_and_logged(stack: str, request: pytest.FixtureRequest) -> None:
    # Given either stack
    run: StackRun = request.getfixturevalue(stack)
    # When the domain is inspected
    domain = run.one(DOMAIN).inputs
    # Then it is encrypted, HTTPS-only, FGAC, in the VPC, logged and snapshotted
    assert domain["encryptAtRest"]["enabled"] is True
    assert domain["encryptAtRest"]["kmsKeyId"].startswith("arn:aws:kms")
    assert domain["nodeToNodeEncryption"]["enabled"] is True
    assert domain["domainEndpointOptions"] == {
        "enforceHttps": True,
        "tlsSecurityPolicy": "Policy-Min-TLS-1-2-PFS-2023-10",
    }
    assert domain["advancedSecurityOptions"]["enabled"] is True
    assert domain["advancedSecurityOptions"]["internalUserDatabaseEnabled"] is False
    assert domain["vpcOptions"]["subnetIds"]
    assert {o["logType"] for o in domain["logPublishingOptions"]} >= {
        "INDEX_SLOW_LOGS",
        "ES_APPLICATION_LOGS",
        "AUDIT_LOGS",
    }
    assert "automatedSnapshotStartHour" in domain["snapshotOptions"]
    assert domain["engineVersion"] == "OpenSearch_2.19"


def test_search_access_policy_admits_only_the_function_roles(staging: StackRun) -> None:
    statement = policy(staging.one(DOMAIN).inputs, "accessPolicies")["Statement"]
    principals = statement[0]["Principal"]["AWS"]
    roles = [
        r.state["arn"]
        for r in staging.of_type("aws:iam/role:Role")
        if r.name in ("ingester-role", "api-role")
    ]
    assert sorted(principals) == sorted(roles)
    assert all(not a.endswith("*") for a in statement[0]["Action"])


def test_search_security_group_admits_only_the_lambdas(staging: StackRun) -> None:
    rule = staging.one(
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "search-in-lambdas"
    ).inputs
    lambda_sg = staging.one("aws:ec2/securityGroup:SecurityGroup", "network-lambda-sg").state["id"]
    assert rule["referencedSecurityGroupId"] == lambda_sg
    assert (rule["fromPort"], rule["toPort"]) == (443, 443)
    assert "cidrIpv4" not in rule


def test_staging_search_is_one_small_node(staging: StackRun) -> None:
    cluster = staging.one(DOMAIN).inputs["clusterConfig"]
    assert cluster["instanceCount"] == 1
    assert cluster["instanceType"] == "t3.small.search"
    assert cluster["dedicatedMasterEnabled"] is False
    assert cluster["zoneAwarenessEnabled"] is False


def test_prod_search_is_highly_available(prod: StackRun) -> None:
    domain = prod.one(DOMAIN).inputs
    cluster = domain["clusterConfig"]
    assert cluster["instanceCount"] >= 3
    assert cluster["zoneAwarenessEnabled"] is True
    assert cluster["zoneAwarenessConfig"]["availabilityZoneCount"] == 3
    assert (cluster["dedicatedMasterEnabled"], cluster["dedicatedMasterCount"]) == (True, 3)
    assert len(domain["vpcOptions"]["subnetIds"]) == 3


# --- network ------------------------------------------------------------------------------
@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_vpc_endpoints_cover_every_aws_api(stack: str, request: pytest.FixtureRequest) -> None:
    run: StackRun = request.getfixturevalue(stack)
    services = {
        e.inputs["serviceName"].rsplit(".", 1)[-1] for e in run.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    }
    assert services >= {"s3", "sqs", "dynamodb", "secretsmanager", "bedrock-runtime", "logs"}
    subnets = run.of_type("aws:ec2/subnet:Subnet")
    assert all(s.inputs["mapPublicIpOnLaunch"] is False for s in subnets)


def test_staging_pays_for_no_nat(staging: StackRun) -> None:
    assert staging.of_type("aws:ec2/natGateway:NatGateway") == []
    assert staging.of_type("aws:ec2/internetGateway:InternetGateway") == []


def test_nat_is_created_when_config_enables_it() -> None:
    from infra.tools.offline import run_stack

    # Given staging with natGateway switched on
    run = run_stack(
        "staging", {"rag-platform:network": {"cidr": "10.40.0.0/16", "azCount": 2, "natGateway": True}}
    )
    # Then one NAT gateway and a default route through it exist
    assert len(run.of_type("aws:ec2/natGateway:NatGateway")) == 1
    routes = [r.inputs for r in run.of_type("aws:ec2/route:Route")]
    assert any("natGatewayId" in r and r["destinationCidrBlock"] == "0.0.0.0/0" for r in routes)


# --- bucket and queues ---------------------------------------------------------------------
def test_document_bucket_is_private_versioned_encrypted_and_tls_only(staging: StackRun) -> None:
    assert (
        staging.one("aws:s3/bucketVersioning:BucketVersioning").inputs["versioningConfiguration"]["status"]
        == "Enabled"
    )
    sse = staging.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    )
    assert sse.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
    block = staging.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert all(
        block[k] is True
        for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    statements = policy(staging.one("aws:s3/bucketPolicy:BucketPolicy").inputs)["Statement"]
    assert any(s["Condition"].get("Bool", {}).get("aws:SecureTransport") == "false" for s in statements)
    rule = staging.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration").inputs["rules"][0]
    assert rule["noncurrentVersionExpiration"]["noncurrentDays"] == 7


def test_bucket_notifies_the_ingest_queue_on_create_and_remove(staging: StackRun) -> None:
    notification = staging.one("aws:s3/bucketNotification:BucketNotification").inputs["queues"][0]
    queue = staging.one("aws:sqs/queue:Queue", "ingest-queue")
    assert notification["queueArn"] == queue.state["arn"]
    assert set(notification["events"]) == {"s3:ObjectCreated:*", "s3:ObjectRemoved:*"}


def test_queues_are_encrypted_with_redrive_from_config(prod: StackRun) -> None:
    queue = prod.one("aws:sqs/queue:Queue", "ingest-queue").inputs
    dlq = prod.one("aws:sqs/queue:Queue", "ingest-dlq")
    assert queue["kmsMasterKeyId"]
    assert dlq.inputs["kmsMasterKeyId"]
    redrive = json.loads(queue["redrivePolicy"])
    assert redrive == {"deadLetterTargetArn": dlq.state["arn"], "maxReceiveCount": 5}
    assert queue["messageRetentionSeconds"] == 345600
    assert dlq.inputs["messageRetentionSeconds"] == 1209600


def test_queue_policy_admits_only_the_bucket(staging: StackRun) -> None:
    statements = policy(staging.one("aws:sqs/queuePolicy:QueuePolicy").inputs)["Statement"]
    allow = [s for s in statements if s["Effect"] == "Allow"]
    bucket = staging.one("aws:s3/bucket:Bucket").state["arn"]
    assert len(allow) == 1
    assert allow[0]["Principal"] == {"Service": "s3.amazonaws.com"}
    assert allow[0]["Condition"]["ArnEquals"]["aws:SourceArn"] == bucket


# --- functions -----------------------------------------------------------------------------
def test_ingester_trigger_protects_cluster_and_quota(prod: StackRun) -> None:
    mapping = prod.one("aws:lambda/eventSourceMapping:EventSourceMapping").inputs
    assert mapping["functionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["scalingConfig"]["maximumConcurrency"] == 8
    assert (mapping["batchSize"], mapping["maximumBatchingWindowInSeconds"]) == (10, 5)
    function = prod.one(FUNCTION, "ingester-function").inputs
    queue = prod.one("aws:sqs/queue:Queue", "ingest-queue").inputs
    assert function["timeout"] < queue["visibilityTimeoutSeconds"]


@pytest.mark.parametrize("name", ["ingester-function", "api-function"])
def test_functions_run_in_vpc_with_tracing_and_contract_env(name: str, staging: StackRun) -> None:
    function = staging.one(FUNCTION, name).inputs
    assert function["tracingConfig"] == {"mode": "Active"}
    assert function["vpcConfig"]["subnetIds"]
    assert function["vpcConfig"]["securityGroupIds"]
    assert function["reservedConcurrentExecutions"] >= 1
    assert function["architectures"] == ["arm64"]
    assert function["runtime"] == "python3.12"
    variables = function["environment"]["variables"]
    # Every variable name is a contract member; the cloud wiring is opensearch + bedrock.
    assert set(variables) <= {e.value for e in Env}
    assert variables[Env.SEARCH_BACKEND] == "opensearch"
    assert variables[Env.EMBEDDER] == "bedrock"
    assert variables[Env.EMBEDDING_MODEL_ID] == "amazon.titan-embed-text-v2:0"
    assert variables[Env.EMBEDDING_DIMENSION] == "1024"
    log_group = staging.one("aws:cloudwatch/logGroup:LogGroup", name.replace("-function", "-logs")).inputs
    assert log_group["name"] == f"/aws/lambda/{function['name']}"
    assert log_group["retentionInDays"] == 14


def test_ingester_timeout_at_visibility_is_refused() -> None:
    from infra.config import ConfigError
    from infra.tools.offline import run_stack

    # Given a config whose ingester timeout reaches the visibility timeout, Then the run fails early
    bad = {
        "batchSize": 10,
        "maxBatchingWindowSeconds": 5,
        "maxConcurrency": 2,
        "reservedConcurrency": 3,
        "timeoutSeconds": 720,
        "memoryMb": 1024,
        "visibilityTimeoutSeconds": 720,
        "maxReceiveCount": 3,
        "retentionSeconds": 345600,
        "dlqRetentionSeconds": 1209600,
    }
    with pytest.raises(ConfigError, match=r"timeoutSeconds .* must be below visibilityTimeoutSeconds"):
        run_stack("staging", {"rag-platform:ingest": bad})


def test_api_is_http_api_with_throttling_and_access_logs(staging: StackRun) -> None:
    assert staging.one("aws:apigatewayv2/api:Api").inputs["protocolType"] == "HTTP"
    stage = staging.one("aws:apigatewayv2/stage:Stage").inputs
    assert stage["defaultRouteSettings"]["throttlingRateLimit"] == 10
    assert stage["defaultRouteSettings"]["throttlingBurstLimit"] == 20
    assert "$context.requestId" in stage["accessLogSettings"]["format"]
    integration = staging.one("aws:apigatewayv2/integration:Integration").inputs
    assert integration["payloadFormatVersion"] == "2.0"


def test_api_keys_are_a_secret_in_secrets_manager(staging: StackRun) -> None:
    version = staging.one("aws:secretsmanager/secretVersion:SecretVersion").inputs
    assert version["secretString"] == "[secret]"
    env = staging.one(FUNCTION, "api-function").inputs["environment"]["variables"]
    assert env[Env.API_KEYS_SECRET_ARN] == staging.one("aws:secretsmanager/secret:Secret").state["arn"]
    assert Env.API_KEYS not in env


def test_waf_and_cloudfront_only_where_configured(staging: StackRun, prod: StackRun) -> None:
    assert staging.of_type("aws:wafv2/webAcl:WebAcl") == []
    acl = prod.one("aws:wafv2/webAcl:WebAcl").inputs
    assert acl["scope"] == "CLOUDFRONT"
    cdn = prod.one("aws:cloudfront/distribution:Distribution").inputs
    assert cdn["webAclId"] == prod.one("aws:wafv2/webAcl:WebAcl").state["arn"]
    assert cdn["defaultCacheBehavior"]["viewerProtocolPolicy"] == "https-only"


# --- ledger ---------------------------------------------------------------------------------
def test_ledger_point_in_time_recovery_per_environment(staging: StackRun, prod: StackRun) -> None:
    assert staging.one("aws:dynamodb/table:Table").inputs["pointInTimeRecovery"]["enabled"] is False
    assert prod.one("aws:dynamodb/table:Table").inputs["pointInTimeRecovery"]["enabled"] is True


# --- IAM ------------------------------------------------------------------------------------
@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_iam_is_least_privilege(stack: str, request: pytest.FixtureRequest) -> None:
    run: StackRun = request.getfixturevalue(stack)
    account = "123456789012"
    for role_policy in run.of_type("aws:iam/rolePolicy:RolePolicy"):
        for statement in policy(role_policy.inputs)["Statement"]:
            actions = statement["Action"]
            # No wildcard action anywhere
            assert all("*" not in a for a in actions), statement
            for resource in statement["Resource"]:
                if resource == "*":
                    assert set(actions) <= UNSCOPED_ACTIONS, statement
                elif resource.startswith("arn:aws:bedrock"):
                    assert resource.split("/", 1)[1] in {
                        "amazon.titan-embed-text-v2:0",
                        "amazon.nova-lite-v1:0",
                        "amazon.nova-pro-v1:0",
                    }
                elif not resource.startswith("arn:aws:s3:::"):
                    assert f":{account}:" in resource, resource
                assert (
                    stack in resource
                    or resource == "*"
                    or ":bedrock:" in resource
                    or "subnet" in resource
                    or "security-group" in resource
                    or "network-interface" in resource
                    or ":kms:" in resource
                ), resource


def test_one_role_per_function(staging: StackRun) -> None:
    roles = {f.inputs["role"] for f in staging.of_type(FUNCTION)}
    assert len(roles) == 2


# --- observability and outputs ------------------------------------------------------------------
def test_alarms_cover_the_issue_list(prod: StackRun) -> None:
    alarms = {
        (a.inputs["namespace"], a.inputs["metricName"])
        for a in prod.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    }
    assert alarms >= {
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage"),
        ("AWS/ApiGateway", "5xx"),
        ("AWS/ApiGateway", "Latency"),
        ("AWS/ES", "ClusterStatus.red"),
        ("AWS/ES", "ClusterStatus.yellow"),
        ("AWS/ES", "FreeStorageSpace"),
        ("AWS/ES", "JVMMemoryPressure"),
    }
    topic = prod.one("aws:sns/topic:Topic").state["arn"]
    assert all(
        a.inputs["alarmActions"] == [topic] for a in prod.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    )
    subscription = prod.one("aws:sns/topicSubscription:TopicSubscription").inputs
    assert subscription["endpoint"] == "platform-oncall@example.com"
    dlq_alarm = prod.one("aws:cloudwatch/metricAlarm:MetricAlarm", "observability-dlq-not-empty").inputs
    assert dlq_alarm["dimensions"]["QueueName"] == "rag-platform-prod-ingest-dlq"


def test_budget_per_stack(staging: StackRun, prod: StackRun) -> None:
    budget = prod.one("aws:budgets/budget:Budget").inputs
    assert (budget["limitAmount"], budget["timeUnit"]) == ("1500.00", "MONTHLY")
    assert budget["costFilters"] == [{"name": "TagKeyValue", "values": ["user:stack$prod"]}]
    assert staging.one("aws:budgets/budget:Budget").inputs["limitAmount"] == "150.00"
    assert prod.one("aws:cloudwatch/dashboard:Dashboard").inputs["dashboardName"] == "rag-platform-prod"


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_outputs_use_contract_keys(stack: str, request: pytest.FixtureRequest) -> None:
    run: StackRun = request.getfixturevalue(stack)
    assert set(run.outputs) == {o.value for o in Output}
    assert run.outputs[Output.SEARCH_ENDPOINT].startswith("https://")
    assert run.outputs[Output.DASHBOARD_URL].endswith(f"dashboards:name=rag-platform-{stack}")


def test_components_parent_their_resources(staging: StackRun) -> None:
    components = {r.urn for r in staging.resources if r.type.startswith("ragplatform:")}
    aws_resources = [
        r for r in staging.resources if r.type.startswith("aws:") and r.type != "pulumi:providers:aws"
    ]
    assert len(components) == 12
    assert all(r.parent in components for r in aws_resources)


def test_api_may_stream_only_from_the_generator_models(staging: StackRun) -> None:
    # Given the API role's policies
    streaming = [
        statement
        for role_policy in staging.of_type("aws:iam/rolePolicy:RolePolicy")
        for statement in policy(role_policy.inputs)["Statement"]
        if "bedrock:InvokeModelWithResponseStream" in statement["Action"]
    ]
    # Then exactly one statement allows ConverseStream, and only on generator models, not the embedder
    assert len(streaming) == 1
    assert streaming[0]["Resource"]
    assert all("titan-embed" not in resource for resource in streaming[0]["Resource"])


def test_ingester_may_send_poison_documents_to_the_dead_letter_queue(staging: StackRun) -> None:
    # Given the queues' ARNs and the ingester's policy statements
    dlq_arn = next(q.state["arn"] for q in staging.of_type("aws:sqs/queue:Queue") if "dlq" in q.state["arn"])
    statements = [
        statement
        for role_policy in staging.of_type("aws:iam/rolePolicy:RolePolicy")
        for statement in policy(role_policy.inputs)["Statement"]
    ]
    # Then exactly one statement allows SendMessage to the DLQ, and nothing else on it
    on_dlq = [s for s in statements if dlq_arn in s["Resource"]]
    assert [s["Action"] for s in on_dlq] == [["sqs:SendMessage"]]
