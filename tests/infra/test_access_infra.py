"""Issue 15 infra: the keys table, the pepper secret, the API's read-only grants, the optional
Cognito pool and the sign-in variables, and the stack keys that configure them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.config import ConfigError, load_stack_config
from infra.tools.offline import StackRun
from service.contract import KEYS_HASH_KEY, PROJECT, Env, Output, ResourceNames
from tests.infra.test_config import raw_config

TABLE = "aws:dynamodb/table:Table"
FUNCTION = "aws:lambda/function:Function"


def api_env(run: StackRun) -> dict[str, Any]:
    variables: dict[str, Any] = run.one(FUNCTION, "api-function").inputs["environment"]["variables"]
    return variables


def api_statements(run: StackRun) -> list[dict[str, Any]]:
    api_role = run.one("aws:iam/role:Role", "api-role")
    return [
        statement
        for role_policy in run.of_type("aws:iam/rolePolicy:RolePolicy")
        if role_policy.inputs["role"] == api_role.state["id"]
        or role_policy.inputs["role"] == api_role.state.get("name")
        for statement in json.loads(role_policy.inputs["policy"])["Statement"]
    ]


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_keys_table_is_keyed_by_id_recoverable_and_encrypted(
    stack: str, request: pytest.FixtureRequest
) -> None:
    run: StackRun = request.getfixturevalue(stack)
    table = run.one(TABLE, "keys-table").inputs
    assert table["name"] == ResourceNames.for_stack(stack).keys_table
    assert table["hashKey"] == KEYS_HASH_KEY
    assert table["pointInTimeRecovery"]["enabled"] is True
    assert table["serverSideEncryption"]["kmsKeyArn"].startswith("arn:aws:kms")
    assert run.outputs[Output.KEYS_TABLE] == table["name"]


def test_the_api_may_only_read_keys_and_the_pepper(staging: StackRun) -> None:
    # Given the API function's environment and its role's statements
    env = api_env(staging)
    table_arn = staging.one(TABLE, "keys-table").state["arn"]
    pepper = staging.one("aws:secretsmanager/secret:Secret", "api-key-pepper-secret").state["arn"]
    statements = [s for s in api_statements(staging) if table_arn in s["Resource"] or pepper in s["Resource"]]
    # Then it finds both by the contract's variables
    assert env[Env.KEYS_TABLE] == staging.one(TABLE, "keys-table").inputs["name"]
    assert env[Env.API_KEY_PEPPER_SECRET_ARN] == pepper
    # and may GetItem the keys and read the pepper, nothing more: minting a key takes operator credentials
    assert sorted(tuple(s["Action"]) for s in statements) == [
        ("dynamodb:GetItem",),
        ("secretsmanager:GetSecretValue",),
    ]
    # and no other function may touch the keys table at all
    others = [
        s
        for role_policy in staging.of_type("aws:iam/rolePolicy:RolePolicy")
        for s in json.loads(role_policy.inputs["policy"])["Statement"]
        if table_arn in s["Resource"]
    ]
    assert len(others) == 1


def test_the_pepper_does_not_rotate_with_the_api_key(staging: StackRun) -> None:
    # Replacing the pepper would invalidate every scoped key; only api.secretsGeneration rotates secrets
    from infra.tools.offline import run_stack

    api = {**raw_config("staging")[f"{PROJECT}:api"], "secretsGeneration": 7}
    rotated = run_stack("staging", {f"{PROJECT}:api": api})

    def keepers(run: StackRun, name: str) -> Any:
        return run.one("random:index/randomPassword:RandomPassword", name).inputs["keepers"]

    assert keepers(rotated, "api-key-pepper-value") == keepers(staging, "api-key-pepper-value")
    assert keepers(rotated, "api-keys-value") != keepers(staging, "api-keys-value")


def test_without_auth_config_there_is_no_pool_and_no_sign_in(staging: StackRun) -> None:
    assert not [r for r in staging.resources if r.type.startswith("aws:cognito/")]
    assert not {k for k in api_env(staging) if k.startswith("AUTH_")}
    assert Output.AUTH_ISSUER not in staging.outputs


def test_cognito_pool_client_and_groups_wire_the_api(cognito_staging: StackRun) -> None:
    # Given staging with auth.cognito.enabled and two mapped groups
    pool = cognito_staging.one("aws:cognito/userPool:UserPool").inputs
    client = cognito_staging.one("aws:cognito/userPoolClient:UserPoolClient")
    groups = sorted(g.inputs["name"] for g in cognito_staging.of_type("aws:cognito/userGroup:UserGroup"))
    env = api_env(cognito_staging)
    # Then the pool is admin-only with MFA offered, the client is public and refuses probing
    assert pool["adminCreateUserConfig"]["allowAdminCreateUserOnly"] is True
    assert pool["mfaConfiguration"] == "OPTIONAL"
    assert client.inputs["generateSecret"] is False
    assert client.inputs["preventUserExistenceErrors"] == "ENABLED"
    assert groups == ["eng", "ops"]
    # And the API verifies the pool's ID tokens: its issuer, the client as audience, cognito:groups
    issuer = cognito_staging.outputs[Output.AUTH_ISSUER]
    assert issuer.startswith("https://cognito-idp.us-east-1.amazonaws.com/")
    assert env[Env.AUTH_ISSUER] == issuer
    assert env[Env.AUTH_AUDIENCE] == client.state["id"] == cognito_staging.outputs[Output.AUTH_CLIENT_ID]
    assert env[Env.AUTH_GROUPS_CLAIM] == "cognito:groups"
    assert json.loads(env[Env.AUTH_GROUP_MAP])["ops"] == {"workspaces": ["*"], "role": "admin"}


def with_auth(auth: dict[str, Any], nat: bool = True) -> dict[str, Any]:
    raw = raw_config("staging")
    raw[f"{PROJECT}:auth"] = auth
    raw[f"{PROJECT}:network"] = {**raw[f"{PROJECT}:network"], "natGateway": nat}
    return raw


def test_an_external_issuer_is_accepted_with_its_audience() -> None:
    config = load_stack_config(
        "staging", with_auth({"issuer": "https://login.example.com/", "audience": "rag-api"})
    )
    assert config.auth.enabled
    assert (config.auth.groups_claim_name, config.auth.user_claim_name) == ("groups", "sub")


@pytest.mark.parametrize(
    ("auth", "nat", "message"),
    [
        pytest.param(
            {"cognito": {"enabled": True}}, False, "needs network.natGateway", id="no-route-to-jwks"
        ),
        pytest.param(
            {"cognito": {"enabled": True}, "issuer": "https://x.example", "audience": "a"},
            True,
            "either cognito.enabled or issuer",
            id="two-issuers",
        ),
        pytest.param({"issuer": "https://x.example"}, True, "audience is required", id="no-audience"),
        pytest.param(
            {"issuer": "http://x.example", "audience": "a"}, True, f"{PROJECT}:auth.issuer", id="http"
        ),
        pytest.param(
            {"issuer": "https://x.example", "audience": "a", "algorithms": ["HS256"]},
            True,
            "HS256",
            id="hmac",
        ),
        pytest.param(
            {"cognito": {"enabled": True, "mfa": "OFF"}}, True, f"{PROJECT}:auth.cognito.mfa", id="mfa-off"
        ),
        pytest.param(
            {"cognito": {"enabled": True, "passwordMinimumLength": 8}},
            True,
            f"{PROJECT}:auth.cognito.passwordMinimumLength",
            id="short-passwords",
        ),
        pytest.param(
            {"cognito": {"enabled": True}, "groupMap": {"eng": {"workspaces": ["default"], "role": "owner"}}},
            True,
            f"{PROJECT}:auth.groupMap.eng.role",
            id="unknown-role",
        ),
        pytest.param({"cognitoo": {"enabled": True}}, True, f"{PROJECT}:auth.cognitoo", id="typo"),
    ],
)
def test_bad_auth_config_fails_naming_the_key(auth: dict[str, Any], nat: bool, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_stack_config("staging", with_auth(auth, nat))
