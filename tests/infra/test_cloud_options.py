"""Issue 13: the cloud options a stack file chooses, one mocked stack per docs/examples/ snippet.

Each snippet under docs/examples/ replaces keys of the staging file (`infra.tools.offline.overlaid`),
so the stack files the docs show are the ones these tests run: what is provisioned, which grants
each role gets, what the functions are told, and that the policy pack and the deploy role accept it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.tools.offline import ROOT, StackRun, overlaid, run_stack
from service.contract import PROJECT, EmbedderName, Env, GeneratorName, SearchBackendName

EXAMPLES = ROOT / "docs" / "examples"
FUNCTION = "aws:lambda/function:Function"
POLICY = "aws:iam/rolePolicy:RolePolicy"
ROLE_POLICIES = {
    "ingester": "ingester-policy",
    "api": "api-policy",
    "provisioner": "search-provisioner-policy",
}


def example(name: str) -> Path:
    return EXAMPLES / f"{name}.yaml"


def run_example(name: str, stack: str = "staging") -> StackRun:
    with overlaid(stack, example(name)):
        return run_stack(stack)


@pytest.fixture(scope="module")
def elastic_openai() -> StackRun:
    return run_example("dev-eu-west-1-elastic-openai")


@pytest.fixture(scope="module")
def external_opensearch() -> StackRun:
    return run_example("search-external-opensearch")


@pytest.fixture(scope="module")
def openai_models() -> StackRun:
    return run_example("models-openai-compatible")


@pytest.fixture(scope="module")
def rerank() -> StackRun:
    return run_example("rerank-bedrock")


def statements(run: StackRun, role: str) -> dict[str, dict[str, Any]]:
    document = json.loads(run.one(POLICY, ROLE_POLICIES[role]).inputs["policy"])
    return {s["Sid"]: s for s in document["Statement"]}


def actions(run: StackRun, role: str) -> set[str]:
    return {a for s in statements(run, role).values() for a in s["Action"]}


def variables(run: StackRun, function: str) -> dict[str, str]:
    found: dict[str, str] = run.one(FUNCTION, f"{function}-function").inputs["environment"]["variables"]
    return found


def secret_reads(run: StackRun, role: str) -> set[str]:
    return {
        r.rsplit(":", 1)[-1]
        for s in statements(run, role).values()
        if "secretsmanager:GetSecretValue" in s["Action"]
        for r in s["Resource"]
    }


def every_example() -> Iterator[str]:
    yield from sorted(p.stem for p in EXAMPLES.glob("*.yaml"))


# --- search ---------------------------------------------------------------------------------
def test_external_elasticsearch_provisions_no_domain_and_grants_no_es_actions(
    elastic_openai: StackRun,
) -> None:
    # Given the dev stack with search on an external Elasticsearch
    run = elastic_openai
    # Then no domain, no domain log group and no es:* permission exists anywhere
    assert run.of_type("aws:opensearch/domain:Domain") == []
    assert not [r for r in run.resources if r.type.startswith("ragplatform:search:SearchCluster")]
    assert not any(a.startswith("es:") for role in ROLE_POLICIES for a in actions(run, role))
    # And the functions are told the engine and the https endpoint, never a credential
    for function in ("ingester", "api", "search-provisioner"):
        env = variables(run, function)
        assert env[Env.SEARCH_BACKEND] == SearchBackendName.ELASTICSEARCH.value
        assert env[Env.SEARCH_ENDPOINT] == "https://acme-dev.es.eu-west-1.aws.elastic.cloud"
        assert env[Env.SEARCH_CREDENTIALS_SECRET_ID] == f"{PROJECT}-staging/search-credentials"
        assert Env.SEARCH_API_KEY not in env
    # And the provisioner maps no OpenSearch roles on a cluster the stack does not own
    provisioner = variables(run, "search-provisioner")
    assert Env.SEARCH_WRITER_ROLE_ARN not in provisioner
    assert Env.SEARCH_REPLICAS not in provisioner
    # And no AWS/ES alarm watches a domain that does not exist
    alarms = run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    assert alarms
    assert all(a.inputs["namespace"] != "AWS/ES" for a in alarms)


def test_every_search_function_and_only_they_read_the_search_credentials(elastic_openai: StackRun) -> None:
    # Given search on an external cluster, Then each role that talks to it reads only that secret for it
    for role in ("ingester", "api", "provisioner"):
        assert f"{PROJECT}-staging/search-credentials-??????" in secret_reads(elastic_openai, role)
    # And the provisioner, which never embeds, does not read the model key
    assert secret_reads(elastic_openai, "provisioner") == {f"{PROJECT}-staging/search-credentials-??????"}


def test_external_opensearch_on_a_non_https_port_opens_only_that_port(external_opensearch: StackRun) -> None:
    # Given an external OpenSearch at :9200
    rules = external_opensearch.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
    to_internet = sorted(r.inputs["fromPort"] for r in rules if r.inputs.get("cidrIpv4") == "0.0.0.0/0")
    # Then the functions may leave through the NAT on 9200 only (Bedrock stays on its VPC endpoint)
    assert to_internet == [9200]
    assert variables(external_opensearch, "api")[Env.SEARCH_BACKEND] == SearchBackendName.OPENSEARCH.value
    # And with models still on Bedrock, no model key is read anywhere
    assert all(
        "model-api-key" not in s for role in ROLE_POLICIES for s in secret_reads(external_opensearch, role)
    )


# --- models ---------------------------------------------------------------------------------
def test_openai_compatible_models_get_no_bedrock_grant_and_no_bedrock_endpoint(
    openai_models: StackRun,
) -> None:
    # Given the models on an OpenAI-compatible endpoint
    run = openai_models
    # Then no role may call Bedrock, and the VPC has no Bedrock runtime endpoint to pay for
    assert not any(a.startswith("bedrock:") for role in ROLE_POLICIES for a in actions(run, role))
    endpoints = {
        r.inputs["serviceName"].rsplit(".", 1)[1] for r in run.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    }
    assert "bedrock-runtime" not in endpoints
    # And the ingester (embeddings) and the API (embeddings, answers) read the key; the provisioner does not
    key = f"{PROJECT}-staging/model-api-key-??????"
    assert key in secret_reads(run, "ingester")
    assert key in secret_reads(run, "api")
    assert "ReadModelApiKey" not in statements(run, "provisioner")
    # And the functions are told the endpoint and the models by their contract names
    env = variables(run, "api")
    assert env[Env.EMBEDDER] == EmbedderName.OPENAI.value
    assert env[Env.GENERATOR] == GeneratorName.OPENAI.value
    assert env[Env.OPENAI_BASE_URL] == "https://api.openai.com/v1"
    assert env[Env.EMBEDDING_MODEL_ID] == "text-embedding-3-small"
    assert env[Env.GENERATOR_MODEL_ID] == "gpt-4o-mini"
    assert env[Env.EMBEDDING_DIMENSION] == "1536"
    assert env[Env.OPENAI_API_KEY_SECRET_ID] == f"{PROJECT}-staging/model-api-key"
    assert Env.OPENAI_API_KEY not in env
    # And search stays on the stack's domain, with no search secret
    assert len(run.of_type("aws:opensearch/domain:Domain")) == 1
    assert all("search-credentials" not in s for role in ROLE_POLICIES for s in secret_reads(run, role))


def test_egress_goes_through_a_nat_route(openai_models: StackRun) -> None:
    # Given a stack that calls an endpoint outside AWS, Then a NAT gateway and its default route exist
    assert len(openai_models.of_type("aws:ec2/natGateway:NatGateway")) == 1
    routes = openai_models.of_type("aws:ec2/route:Route")
    assert any(
        r.inputs.get("natGatewayId") and r.inputs["destinationCidrBlock"] == "0.0.0.0/0" for r in routes
    )


def test_bedrock_stacks_read_no_operator_secret(staging: StackRun, prod: StackRun) -> None:
    # Given the committed stacks (domain and Bedrock), Then no function reads an operator's secret
    for run in (staging, prod):
        for function in ("ingester", "api", "search-provisioner"):
            env = variables(run, function)
            assert Env.SEARCH_CREDENTIALS_SECRET_ID not in env
            assert Env.OPENAI_API_KEY_SECRET_ID not in env


# --- rerank ---------------------------------------------------------------------------------
def test_rerank_grants_only_the_api_and_only_when_enabled(rerank: StackRun, staging: StackRun) -> None:
    # Given rerank enabled
    api = statements(rerank, "api")
    # Then the API may call Rerank (no resource type: "*") and invoke exactly the rerank model
    assert api["Rerank"]["Action"] == ["bedrock:Rerank"]
    assert api["Rerank"]["Resource"] == ["*"]
    model = "arn:aws:bedrock:us-east-1::foundation-model/amazon.rerank-v1:0"
    assert api["InvokeRerankModel"]["Resource"] == [model]
    env = variables(rerank, "api")
    assert env[Env.RERANK_MODEL_ARN] == model
    assert env[Env.RERANK_DEPTH] == "50"
    # And its VPC endpoint exists, while the ingester gets nothing of it
    services = {r.inputs["serviceName"] for r in rerank.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")}
    assert "com.amazonaws.us-east-1.bedrock-agent-runtime" in services
    assert "bedrock:Rerank" not in actions(rerank, "ingester")
    # And without rerank (staging), no grant, no variable, no endpoint
    assert "bedrock:Rerank" not in actions(staging, "api")
    assert Env.RERANK_MODEL_ARN not in variables(staging, "api")
    assert not any(
        "agent-runtime" in r.inputs["serviceName"] for r in staging.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    )


# --- every example through the policy pack and the deploy role ---------------------------------
@pytest.mark.parametrize("name", list(every_example()))
def test_every_documented_stack_file_passes_the_pack_and_the_deploy_role(name: str) -> None:
    from infra.policy import coverage
    from infra.policy import offline as pack
    from infra.tools.offline import config_map

    # Given a stack file the docs show, When it runs under mocks
    with overlaid("staging", example(name)):
        run = run_stack("staging")
        region = config_map("staging")[0]["aws:region"]
    # Then the policy pack reports nothing and the staging deploy role may make every request
    assert pack.violations(run) == []
    deployer = coverage.deploy_principal(coverage.deployer_for("staging"))
    assert [str(g) for g in coverage.gaps(run, deployer, region)] == []


# --- the stack file: bad choices fail naming the key ---------------------------------------------
def _staging_with(**sections: Any) -> dict[str, Any]:
    import yaml

    from infra.tools.offline import stack_file

    raw: dict[str, Any] = yaml.safe_load(stack_file("staging").read_text())["config"]
    raw.update({f"{PROJECT}:{k}" if ":" not in k else k: v for k, v in sections.items()})
    return raw


def _error(raw: dict[str, Any]) -> str:
    from infra.config import ConfigError, load_stack_config

    with pytest.raises(ConfigError) as caught:
        load_stack_config("staging", raw)
    return str(caught.value)


NAT_NETWORK = {"cidr": "10.40.0.0/16", "azCount": 2, "natGateway": True}
ELASTIC = {"provider": "external", "engine": "elasticsearch", "endpoint": "https://acme.es.example.com"}
OPENAI = {
    "provider": "openai-compatible",
    "baseUrl": "https://api.openai.com/v1",
    "generatorModel": "gpt-4o-mini",
    "embeddingModel": "text-embedding-3-small",
    "embeddingDimension": 1536,
}


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        # The two refusals now say what to do instead
        ({"search": {**ELASTIC, "searchBackend": "x"}}, f"{PROJECT}:search.searchBackend: Extra inputs"),
        (
            {
                "models": {
                    "generatorModelId": "gpt-4o-mini",
                    "embeddingModelId": "amazon.titan-embed-text-v2:0",
                    "embeddingDimension": 1024,
                }
            },
            f"{PROJECT}:models.generatorModelId: Value error, 'gpt-4o-mini' is not a Bedrock model id",
        ),
        # Egress to an endpoint outside AWS needs the NAT gateway
        (
            {"search": ELASTIC},
            f"{PROJECT}:network.natGateway: Value error, network.natGateway must be true: search.endpoint",
        ),
        (
            {"models": OPENAI},
            f"{PROJECT}:network.natGateway: Value error, network.natGateway must be true: models.baseUrl",
        ),
        # Credentials travel only over https, and never in the URL
        (
            {"network": NAT_NETWORK, "search": {**ELASTIC, "endpoint": "http://es.example.com"}},
            f"{PROJECT}:search.endpoint:",
        ),
        (
            {"network": NAT_NETWORK, "models": {**OPENAI, "baseUrl": "https://user:sk@api.example.com/v1"}},
            f"{PROJECT}:models.baseUrl: Value error, credentials belong in the Secrets Manager secret",
        ),
        (
            {"search": {**ELASTIC, "provider": "elastic-cloud"}},
            f"{PROJECT}:search: Input tag 'elastic-cloud'",
        ),
        ({"network": NAT_NETWORK, "search": {**ELASTIC, "engine": "solr"}}, f"{PROJECT}:search.engine:"),
        # A model ARN in another region is refused: the grant and the client are regional
        (
            {
                "models": {
                    "embeddingModelId": "amazon.titan-embed-text-v2:0",
                    "embeddingDimension": 1024,
                    "generatorModelId": "arn:aws:bedrock:eu-west-1::foundation-model/amazon.nova-lite-v1:0",
                }
            },
            f"{PROJECT}:models.generatorModelId: Value error, models.generatorModelId",
        ),
        # The Bedrock embedder speaks Titan v2 only
        (
            {
                "models": {
                    "embeddingModelId": "cohere.embed-english-v3",
                    "embeddingDimension": 1024,
                    "generatorModelId": "amazon.nova-lite-v1:0",
                }
            },
            "is not Titan Text Embeddings v2",
        ),
        ({"rerank": {"enabled": True, "modelId": "us.amazon.rerank-v1:0"}}, f"{PROJECT}:rerank.modelId:"),
    ],
)
def test_a_bad_provider_choice_fails_naming_the_key(sections: dict[str, Any], expected: str) -> None:
    assert expected in _error(_staging_with(**sections))


@pytest.mark.parametrize(
    ("model_id", "granted"),
    [
        # botocore's bedrock-runtime modelId alternatives the program can scope a grant to
        (
            "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0",
            ["arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0"],
        ),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-pro-v1:0",
            [
                "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-pro-v1:0",
                "arn:aws:bedrock:*::foundation-model/amazon.nova-pro-v1:0",
            ],
        ),
        (
            "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abcdef123456",
            ["arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abcdef123456"],
        ),
    ],
)
def test_bedrock_model_arns_are_accepted_and_granted_as_given(model_id: str, granted: list[str]) -> None:
    from infra import arns
    from infra.config import load_stack_config

    # Given the generator named by ARN, as docs/providers.md allows
    raw = _staging_with(
        models={
            "embeddingModelId": "amazon.titan-embed-text-v2:0",
            "embeddingDimension": 1024,
            "generatorModelId": model_id,
        }
    )
    # Then the stack file validates and the grant is that ARN (and a profile's models)
    assert load_stack_config("staging", raw).models.generator_model_id == model_id  # type: ignore[union-attr]
    assert arns.bedrock_model_arns("us-east-1", "123456789012", model_id) == granted


def test_application_inference_profiles_are_refused() -> None:
    # Their models cannot be read from the ARN, so no least-privilege grant exists
    arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123"
    raw = _staging_with(
        models={
            "embeddingModelId": "amazon.titan-embed-text-v2:0",
            "embeddingDimension": 1024,
            "generatorModelId": arn,
        }
    )
    assert f"{PROJECT}:models.generatorModelId" in _error(raw)


# --- the must-show: a dev stack in eu-west-1 on Elastic and an OpenAI-compatible endpoint ---------
# The stack name every deploy role exists for on this branch; after issue 13's stacks-are-data
# work lands, "dev" (the name) works the same way.
MUST_SHOW_STACK = "staging"


def test_the_dev_stack_on_elastic_and_openai_passes_the_rehearsal() -> None:
    from infra.tools import rehearse

    # Given the staging file with the must-show example's keys (eu-west-1, NAT, Elastic, OpenAI)
    with overlaid(MUST_SHOW_STACK, example("dev-eu-west-1-elastic-openai")):
        # When the offline rehearsal runs (checkov and parliament are `make rehearse`'s, not this test's)
        verdicts = rehearse.rehearse(MUST_SHOW_STACK, checkov=None, parliament=None)
    # Then every check passes, and the operator secrets are listed for `make preflight`
    assert [(v.check, v.ok) for v in verdicts if not v.ok] == []
    assert {v.check for v in verdicts} >= {
        "program",
        "deploy-roles",
        "preview-role",
        "policy-pack",
        "iam-lint",
        "operator-secrets",
    }
    secrets = next(v for v in verdicts if v.check == "operator-secrets").summary
    assert (
        f"{PROJECT}-{MUST_SHOW_STACK}/model-api-key, {PROJECT}-{MUST_SHOW_STACK}/search-credentials"
        in secrets
    )


def test_a_function_told_a_secret_it_may_not_read_fails_the_rehearsal(
    openai_models: StackRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from infra.tools import rehearse

    # Given the OpenAI-compatible stack with the API's ReadModelApiKey statement removed (the grant forgotten)
    def strip(record: Any) -> Any:
        if record.type != POLICY or record.name != "api-policy":
            return record
        document = json.loads(record.inputs["policy"])
        document["Statement"] = [s for s in document["Statement"] if s["Sid"] != "ReadModelApiKey"]
        return replace(record, inputs={**record.inputs, "policy": json.dumps(document)})

    broken = replace(openai_models, resources=[strip(r) for r in openai_models.resources])
    monkeypatch.setattr("infra.tools.offline.run_stack", lambda stack, overrides=None: broken)
    # When the rehearsal runs
    with overlaid("staging", example("models-openai-compatible")):
        verdicts = {v.check: v for v in rehearse.rehearse("staging", checkov=None, parliament=None)}
    # Then the operator-secrets check fails, naming the function, the variable and the secret
    assert not verdicts["operator-secrets"].ok
    assert any(
        d.startswith(
            f"api-function: OPENAI_API_KEY_SECRET_ID={PROJECT}-staging/model-api-key "
            "but its role may not read"
        )
        for d in verdicts["operator-secrets"].details
    )
