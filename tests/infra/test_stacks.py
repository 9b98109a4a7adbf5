"""Each component's resources and properties, per environment, from whole-stack mock runs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra import aws_catalog
from infra.iam import UNSCOPED_ACTIONS
from infra.naming import domain_name
from infra.tools.offline import MASK, StackRun, run_stack
from service.contract import ORIGIN_VERIFY_HEADER, PROJECT, Env, Output, ResourceNames
from service.search.security import platform_roles

DOMAIN = "aws:opensearch/domain:Domain"
FUNCTION = "aws:lambda/function:Function"
ROLE = "aws:iam/role:Role"
INVOCATION = "aws:lambda/invocation:Invocation"
ALL_HTTP_VERBS = ("es:ESHttpDelete", "es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost", "es:ESHttpPut")


def committed(stack: str) -> dict[str, Any]:
    from infra.tools.offline import committed_config

    return committed_config(stack)


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


def role_arn(run: StackRun, logical: str) -> str:
    return str(run.one(ROLE, f"{logical}-role").state["arn"])


def domain_statements(run: StackRun) -> dict[str, dict[str, Any]]:
    """The domain access policy's statements by principal ARN."""
    statements = policy(run.one(DOMAIN).inputs, "accessPolicies")["Statement"]
    return {s["Principal"]["AWS"]: s for s in statements}


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_search_access_is_per_role_and_no_role_gets_every_verb(
    stack: str, request: pytest.FixtureRequest
) -> None:
    # Given the domain's access policy
    run: StackRun = request.getfixturevalue(stack)
    by_role = domain_statements(run)
    domain = f"arn:aws:es:us-east-1:123456789012:domain/{domain_name(stack)}"
    alias = f"{domain}/{ResourceNames.for_stack(stack).index_alias}"
    # Then exactly the three function roles are admitted, each by its own statement
    assert set(by_role) == {role_arn(run, r) for r in ("ingester", "api", "search-provisioner")}
    assert all(set(s["Action"]) != set(ALL_HTTP_VERBS) for s in by_role.values())
    # The API may only search (and count) through the read alias
    assert by_role[role_arn(run, "api")]["Action"] == ["es:ESHttpPost"]
    assert by_role[role_arn(run, "api")]["Resource"] == [f"{alias}/_search", f"{alias}/_count"]
    # The ingester may bulk-write and search, never create, change or delete an index
    ingester = by_role[role_arn(run, "ingester")]
    assert ingester["Action"] == ["es:ESHttpPost"]
    assert ingester["Resource"] == [f"{domain}/_bulk", f"{alias}/_search"]
    # Only the provisioner administers, without DELETE
    admin = by_role[role_arn(run, "search-provisioner")]
    assert admin["Action"] == ["es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPut"]


def es_grants(run: StackRun, logical: str) -> list[dict[str, Any]]:
    document = policy(run.one("aws:iam/rolePolicy:RolePolicy", f"{logical}-policy").inputs)
    return [s for s in document["Statement"] if any(a.startswith("es:") for a in s["Action"])]


def test_api_role_can_only_read_the_alias(staging: StackRun) -> None:
    # Given the API role's own policy
    grants = es_grants(staging, "api")
    alias = f"arn:aws:es:us-east-1:123456789012:domain/{domain_name('staging')}/{PROJECT}-chunks"
    # Then its only search grant is POST on the alias's _search and _count: no PUT to create
    # an index, no GET of mappings (the API never calls ensure_index)
    assert [(g["Action"], g["Resource"]) for g in grants] == [
        (["es:ESHttpPost"], sorted([f"{alias}/_search", f"{alias}/_count"]))
    ]


def test_master_user_is_the_provisioner_not_the_ingester(prod: StackRun) -> None:
    # Given the domain's fine-grained access control
    master = prod.one(DOMAIN).inputs["advancedSecurityOptions"]["masterUserOptions"]["masterUserArn"]
    # Then its master user is the provisioning function's role, a principal of its own
    assert master == role_arn(prod, "search-provisioner")
    assert master not in {role_arn(prod, "ingester"), role_arn(prod, "api")}
    provisioner_role = prod.one(FUNCTION, "search-provisioner-function").inputs["role"]
    assert provisioner_role == master
    assert prod.one(FUNCTION, "ingester-function").inputs["role"] != master


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
        "staging", {f"{PROJECT}:network": {"cidr": "10.40.0.0/16", "azCount": 2, "natGateway": True}}
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
    # The provisioner owns the index: neither function creates or inspects it
    assert variables[Env.SEARCH_PROVISIONED] == "true"
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
        run_stack("staging", {f"{PROJECT}:ingest": bad})


def test_api_is_http_api_with_throttling_and_access_logs(staging: StackRun) -> None:
    assert staging.one("aws:apigatewayv2/api:Api").inputs["protocolType"] == "HTTP"
    stage = staging.one("aws:apigatewayv2/stage:Stage").inputs
    assert stage["defaultRouteSettings"]["throttlingRateLimit"] == 10
    assert stage["defaultRouteSettings"]["throttlingBurstLimit"] == 20
    assert "$context.requestId" in stage["accessLogSettings"]["format"]
    integration = staging.one("aws:apigatewayv2/integration:Integration").inputs
    assert integration["payloadFormatVersion"] == "2.0"


def test_api_key_is_generated_by_the_stack_and_exported_as_a_secret(staging: StackRun) -> None:
    # Given a stack file that sets no key at all
    secret = staging.one("aws:secretsmanager/secret:Secret", "api-keys-secret")
    # Then the stack generates the key, stores it in Secrets Manager and exports it as a secret
    password = staging.one("random:index/randomPassword:RandomPassword", "api-keys-value").inputs
    assert password["length"] >= 32
    assert password["special"] is False
    version = staging.one("aws:secretsmanager/secretVersion:SecretVersion", "api-keys-version").inputs
    assert version["secretString"] == MASK
    assert version["secretId"] == secret.state["id"]
    assert Output.API_KEY in staging.secret_outputs
    assert staging.outputs[Output.API_KEY].startswith("mock-api-keys-value-")
    # And the API reads that secret, never a key in its environment
    env = staging.one(FUNCTION, "api-function").inputs["environment"]["variables"]
    assert env[Env.API_KEYS_SECRET_ARN] == secret.state["arn"]
    assert Env.API_KEYS not in env


def test_api_key_rotates_when_the_generation_is_bumped(staging: StackRun) -> None:
    # Given the same stack with api.secretsGeneration bumped
    api = {**committed(staging.stack)[f"{PROJECT}:api"], "secretsGeneration": 2}
    rotated = run_stack("staging", {f"{PROJECT}:api": api})

    # Then the generator's keeper changes, which makes Pulumi replace the key
    def keeper(run: StackRun) -> str:
        inputs = run.one("random:index/randomPassword:RandomPassword", "api-keys-value").inputs
        return str(inputs["keepers"]["generation"])

    assert (keeper(staging), keeper(rotated)) == ("1", "2")
    # And the API function's configuration changes too, so no instance keeps the old key
    description = rotated.one(FUNCTION, "api-function").inputs["description"]
    assert description != staging.one(FUNCTION, "api-function").inputs["description"]


def test_api_behind_the_edge_refuses_requests_that_bypass_it(prod: StackRun, staging: StackRun) -> None:
    # Given prod, whose WAF puts CloudFront in front of the API
    origin = prod.one("aws:cloudfront/distribution:Distribution").inputs["origins"][0]
    secret = prod.one("aws:secretsmanager/secret:Secret", "origin-verify-secret").state["arn"]
    # Then CloudFront sends the generated origin secret in its header
    assert origin["customHeaders"] == [{"name": ORIGIN_VERIFY_HEADER, "value": MASK}]
    # And the API function knows where to read it, and its role may read exactly that secret
    env = prod.one(FUNCTION, "api-function").inputs["environment"]["variables"]
    assert env[Env.ORIGIN_VERIFY_SECRET_ARN] == secret
    api_policy = policy(prod.one("aws:iam/rolePolicy:RolePolicy", "api-policy").inputs)["Statement"]
    assert any(
        s["Resource"] == [secret] for s in api_policy if "secretsmanager:GetSecretValue" in s["Action"]
    )
    # While staging, without an edge, has no origin secret and no check
    staging_env = staging.one(FUNCTION, "api-function").inputs["environment"]["variables"]
    assert Env.ORIGIN_VERIFY_SECRET_ARN not in staging_env
    assert [r.name for r in staging.of_type("aws:secretsmanager/secret:Secret")] == [
        "api-keys-secret",
        "api-key-pepper-secret",
    ]


def test_waf_and_cloudfront_only_where_configured(staging: StackRun, prod: StackRun) -> None:
    assert staging.of_type("aws:wafv2/webAcl:WebAcl") == []
    acl = prod.one("aws:wafv2/webAcl:WebAcl").inputs
    assert acl["scope"] == "CLOUDFRONT"
    cdn = prod.one("aws:cloudfront/distribution:Distribution").inputs
    assert cdn["webAclId"] == prod.one("aws:wafv2/webAcl:WebAcl").state["arn"]
    assert cdn["defaultCacheBehavior"]["viewerProtocolPolicy"] == "https-only"


# --- ledger ---------------------------------------------------------------------------------
def test_ledger_point_in_time_recovery_per_environment(staging: StackRun, prod: StackRun) -> None:
    assert (
        staging.one("aws:dynamodb/table:Table", "ledger-table").inputs["pointInTimeRecovery"]["enabled"]
        is False
    )
    assert (
        prod.one("aws:dynamodb/table:Table", "ledger-table").inputs["pointInTimeRecovery"]["enabled"] is True
    )


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
                    or domain_name(stack) in resource
                    or resource == "*"
                    or ":bedrock:" in resource
                    or "subnet" in resource
                    or "security-group" in resource
                    or "network-interface" in resource
                    or ":kms:" in resource
                ), resource


def test_one_role_per_function(staging: StackRun) -> None:
    roles = {f.inputs["role"] for f in staging.of_type(FUNCTION)}
    assert len(roles) == len(staging.of_type(FUNCTION)) == 3


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_every_role_is_named_under_the_stack_prefix(stack: str, request: pytest.FixtureRequest) -> None:
    # Given every IAM role the program creates (the deploy roles may create only `rag-platform-*`)
    run: StackRun = request.getfixturevalue(stack)
    names = {r.name: r.inputs.get("name") for r in run.of_type(ROLE)}
    # Then each has an explicit name under the stack's prefix, within IAM's limit; none is auto-named
    assert set(names) == {"network-flow-logs-role", "ingester-role", "api-role", "search-provisioner-role"}
    assert all(n and n.startswith(f"{PROJECT}-{stack}-") for n in names.values()), names
    assert all(len(str(n)) <= aws_catalog.iam_role_name_max() for n in names.values())
    assert names["network-flow-logs-role"] == f"{PROJECT}-{stack}-flow-logs"


def test_role_names_beyond_the_iam_limit_are_hashed_not_cut() -> None:
    from infra.naming import role_name

    # Given purposes long enough to push the name past 64 characters, differing only at the end
    first, second = role_name("staging", "x" * 60), role_name("staging", "x" * 59 + "y")
    # Then each fits IAM, keeps the prefix the deploy roles match on, and they differ
    assert len(first) <= aws_catalog.iam_role_name_max()
    assert first.startswith(f"{PROJECT}-staging-")
    assert first != second


# --- search provisioning ---------------------------------------------------------------------------
@pytest.mark.parametrize(("stack", "replicas"), [("staging", "0"), ("prod", "1")])
def test_provisioner_runs_during_up_with_the_stack_replicas(
    stack: str, replicas: str, request: pytest.FixtureRequest
) -> None:
    # Given either stack
    run: StackRun = request.getfixturevalue(stack)
    function = run.one(FUNCTION, "search-provisioner-function").inputs
    invocation = run.one(INVOCATION).inputs
    # Then `pulumi up` invokes the provisioning function, inside the VPC
    assert invocation["functionName"] == function["name"]
    assert function["handler"] == "service.handlers.provision.handler"
    assert function["vpcConfig"]["subnetIds"]
    # with the replicas of the stack file (0 on the single staging node) and both roles to map
    env = function["environment"]["variables"]
    assert set(env) <= {e.value for e in Env}
    assert env[Env.SEARCH_REPLICAS] == replicas
    assert env[Env.SEARCH_WRITER_ROLE_ARN] == role_arn(run, "ingester")
    assert env[Env.SEARCH_READER_ROLE_ARN] == role_arn(run, "api")
    roles = platform_roles(env[Env.SEARCH_INDEX_ALIAS], role_arn(run, "ingester"), role_arn(run, "api"))
    assert [r.backend_role_arn for r in roles] == [role_arn(run, "ingester"), role_arn(run, "api")]
    # and the trigger is what the function is told
    assert json.loads(invocation["input"]) == {"fingerprint": invocation["triggers"]["fingerprint"]}
    # And the queue trigger starts only after provisioning: no write before the index exists
    trigger = run.one("aws:lambda/eventSourceMapping:EventSourceMapping")
    assert run.one(INVOCATION).urn in trigger.dependencies


def test_provisioning_reruns_when_replicas_change_and_only_then(staging: StackRun) -> None:
    # Given the same stack run again unchanged, and once with another replica count
    same = run_stack("staging")
    search = {**committed("staging")[f"{PROJECT}:search"], "instanceCount": 2, "replicas": 1}
    changed = run_stack("staging", {f"{PROJECT}:search": search})

    def trigger(run: StackRun) -> str:
        return str(run.one(INVOCATION).inputs["triggers"]["fingerprint"])

    # Then an unchanged stack keeps its trigger (no diff on preview), a changed one re-runs it
    assert trigger(same) == trigger(staging)
    assert trigger(changed) != trigger(staging)


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
    assert dlq_alarm["dimensions"]["QueueName"] == f"{PROJECT}-prod-ingest-dlq"


def test_budget_per_stack(staging: StackRun, prod: StackRun) -> None:
    budget = prod.one("aws:budgets/budget:Budget").inputs
    assert (budget["limitAmount"], budget["timeUnit"]) == ("1500.00", "MONTHLY")
    assert budget["costFilters"] == [{"name": "TagKeyValue", "values": ["user:stack$prod"]}]
    assert staging.one("aws:budgets/budget:Budget").inputs["limitAmount"] == "150.00"
    assert prod.one("aws:cloudwatch/dashboard:Dashboard").inputs["dashboardName"] == f"{PROJECT}-prod"


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_outputs_use_contract_keys(stack: str, request: pytest.FixtureRequest) -> None:
    run: StackRun = request.getfixturevalue(stack)
    # The sign-in outputs exist only where signing in is configured (tests/infra/test_access_infra.py).
    assert set(run.outputs) == {o.value for o in Output} - {Output.AUTH_ISSUER, Output.AUTH_CLIENT_ID}
    assert run.outputs[Output.SEARCH_ENDPOINT].startswith("https://")
    assert run.outputs[Output.DASHBOARD_URL].endswith(f"dashboards:name={PROJECT}-{stack}")


def test_components_parent_their_resources(staging: StackRun) -> None:
    components = {r.urn for r in staging.resources if r.type.startswith("ragplatform:")}
    aws_resources = [
        r for r in staging.resources if r.type.startswith("aws:") and r.type != "pulumi:providers:aws"
    ]
    # 14, plus issue 15's keys table and pepper secret
    assert len(components) == 16
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
