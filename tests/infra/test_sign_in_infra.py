"""Issue 15 item 3 infra: the Cognito hosted sign-in the page's code flow needs (a prefix domain, an
app client for the code flow back to the page) and the values AWS would refuse, checked before
`pulumi up` sends them."""

from __future__ import annotations

import re
from typing import Any

import botocore.session
import pytest

from infra.config import ConfigError, load_stack_config
from infra.hosted_sign_in import (
    OAUTH_SCOPES,
    check_domain_prefix,
    check_redirect_url,
    default_domain_prefix,
    page_url,
)
from infra.naming import stack_prefix
from infra.policy import rules
from infra.tools.offline import StackRun
from service.contract import PROJECT, Env, Output
from service.settings import Settings
from tests.infra.test_access_infra import api_env, with_auth
from tests.infra.test_policy import violations

CLIENT = "aws:cognito/userPoolClient:UserPoolClient"
NAT_OVERRIDE = {f"{PROJECT}:network": {"cidr": "10.40.0.0/16", "azCount": 2, "natGateway": True}}


def cognito_shape(name: str) -> dict[str, Any]:
    shape = botocore.session.get_session().get_service_model("cognito-idp").shape_for(name)
    return dict(shape.metadata)


def test_the_hosted_sign_in_sends_the_browser_back_to_the_page(cognito_staging: StackRun) -> None:
    # Given staging with auth.cognito.enabled
    domain = cognito_staging.one("aws:cognito/userPoolDomain:UserPoolDomain").inputs
    client = cognito_staging.one(CLIENT).inputs
    pool = cognito_staging.one("aws:cognito/userPool:UserPool")
    page = cognito_staging.outputs[Output.API_URL].rstrip("/") + "/"
    # Then the pool has a prefix domain AWS accepts, unique to the account, on the pool
    assert domain["userPoolId"] == pool.state["id"]
    assert domain["managedLoginVersion"] == 1  # the classic hosted UI: no branding resource needed
    assert re.fullmatch(cognito_shape("DomainType")["pattern"], domain["domain"])
    assert domain["domain"].startswith(f"{stack_prefix('staging')}-")
    # And the client allows the code flow only, for ID tokens, back to the API's page only
    assert client["allowedOauthFlows"] == ["code"]
    assert client["allowedOauthFlowsUserPoolClient"] is True
    assert client["allowedOauthScopes"] == ["openid", "email", "profile"]
    assert client["supportedIdentityProviders"] == ["COGNITO"]
    assert client["callbackUrls"] == client["logoutUrls"] == [page]
    assert client["generateSecret"] is False
    assert violations(rules.cognito_sign_in_redirects, CLIENT, client) == []


def test_the_api_tells_the_page_the_hosted_endpoints(cognito_staging: StackRun) -> None:
    env = api_env(cognito_staging)
    prefix = cognito_staging.one("aws:cognito/userPoolDomain:UserPoolDomain").inputs["domain"]
    base = f"https://{prefix}.auth.us-east-1.amazoncognito.com"
    assert env[Env.AUTH_AUTHORIZE_URL] == f"{base}/oauth2/authorize"
    assert env[Env.AUTH_TOKEN_URL] == f"{base}/oauth2/token"
    assert env[Env.AUTH_LOGOUT_URL] == f"{base}/logout"
    assert env[Env.AUTH_CLIENT_ID] == cognito_staging.outputs[Output.AUTH_CLIENT_ID]
    # And the API's settings accept exactly what the stack gives it (the page's sign-in is on)
    auth = {k: v for k, v in env.items() if k.startswith("AUTH_")}
    settings = Settings.model_validate({k.lower(): v for k, v in auth.items()})
    assert settings.auth_token_url == f"{base}/oauth2/token"


def test_without_cognito_there_is_no_domain(staging: StackRun) -> None:
    assert not staging.of_type("aws:cognito/userPoolDomain:UserPoolDomain")


@pytest.mark.parametrize(
    "prefix",
    ["Rag-Platform", "-rag", "rag-", "rag_platform", "r" * 64, "", "my-aws-rag", "amazonish", "acme-cognito"],
    ids=["upper", "lead-dash", "trail-dash", "underscore", "too-long", "empty", "aws", "amazon", "cognito"],
)
def test_a_domain_prefix_aws_would_refuse_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="Cognito domain prefix"):
        check_domain_prefix(prefix)


def test_the_default_prefix_fits_aws_and_hides_the_account() -> None:
    prefix = default_domain_prefix(stack_prefix("staging"), "123456789012")
    assert check_domain_prefix(prefix) == prefix
    assert "123456789012" not in prefix
    assert prefix != default_domain_prefix(stack_prefix("staging"), "210987654321")
    assert len(prefix) <= cognito_shape("DomainType")["max"]


@pytest.mark.parametrize(
    "url",
    [
        "http://abc.execute-api.us-east-1.amazonaws.com/",
        "https://api.example.com/#section",
        "https://api.example.com/a b",
        "https://api.example.com/" + "a" * 1024,
        "http://localhost.evil.example/",
    ],
    ids=["http", "fragment", "space", "too-long", "localhost-lookalike"],
)
def test_a_redirect_url_aws_would_refuse_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="redirect URL"):
        check_redirect_url(url)
    # And the policy pack refuses the same URL on an app client (the length is AWS's own check)
    if len(url) <= cognito_shape("RedirectUrlType")["max"]:
        assert violations(rules.cognito_sign_in_redirects, CLIENT, {"callbackUrls": [url]}) != []


def test_the_client_scopes_fit_aws() -> None:
    scope = cognito_shape("ScopeType")
    assert all(re.fullmatch(scope["pattern"], s) and len(s) <= scope["max"] for s in OAUTH_SCOPES)
    assert "openid" in OAUTH_SCOPES


def test_the_page_url_is_the_api_root() -> None:
    assert page_url("https://abc.execute-api.us-east-1.amazonaws.com") == (
        "https://abc.execute-api.us-east-1.amazonaws.com/"
    )
    assert check_redirect_url("http://localhost:8000/") == "http://localhost:8000/"
    assert len("https://x/" + "a" * 1000) <= cognito_shape("RedirectUrlType")["max"]


@pytest.mark.parametrize(
    "props",
    [
        {"allowedOauthFlows": ["code", "implicit"], "allowedOauthScopes": ["openid"]},
        {"allowedOauthFlows": ["client_credentials"]},
        {"allowedOauthFlows": ["code"], "allowedOauthScopes": ["email"]},
        {
            "allowedOauthFlows": ["code"],
            "allowedOauthScopes": ["openid"],
            "logoutUrls": ["http://x.example/"],
        },
    ],
    ids=["implicit", "client-credentials", "no-openid", "http-logout"],
)
def test_the_policy_pack_refuses_other_flows_and_plain_http(props: dict[str, Any]) -> None:
    assert violations(rules.cognito_sign_in_redirects, CLIENT, props) != []


@pytest.mark.parametrize(
    ("cognito", "message"),
    [
        ({"enabled": True, "domainPrefix": "Acme_Login"}, f"{PROJECT}:auth.cognito.domainPrefix"),
        ({"enabled": True, "domainPrefix": "acme-aws-login"}, "must not contain"),
    ],
    ids=["pattern", "reserved-word"],
)
def test_a_bad_domain_prefix_fails_naming_the_key(cognito: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_stack_config("staging", with_auth({"cognito": cognito}))


def test_a_stack_whose_default_prefix_aws_would_refuse_must_set_one() -> None:
    # Given a stack named with a word Cognito reserves, and no domainPrefix
    raw = with_auth({"cognito": {"enabled": True}})
    # When its config loads, Then it fails naming the key to set; with the key set it loads
    with pytest.raises(ConfigError, match=r"auth\.cognito\.domainPrefix must be set"):
        load_stack_config("aws-lab", raw)
    fixed = with_auth({"cognito": {"enabled": True, "domainPrefix": "acme-rag-lab"}})
    assert load_stack_config("aws-lab", fixed).auth.cognito.domain_prefix == "acme-rag-lab"


EXTERNAL = {
    "issuer": "https://login.example.com/",
    "audience": "rag-api",
    "clientId": "rag-page",
    "authorizeUrl": "https://login.example.com/oauth2/authorize",
    "tokenUrl": "https://login.example.com/oauth2/token",
}


def test_an_external_issuer_can_offer_the_page_sign_in() -> None:
    from infra.tools.offline import run_stack

    # Given staging with an external issuer and its public client for the page
    run = run_stack("staging", {f"{PROJECT}:auth": EXTERNAL, **NAT_OVERRIDE})
    env = api_env(run)
    # Then the API tells the page that issuer's endpoints and client, and creates no Cognito pool
    assert (env[Env.AUTH_CLIENT_ID], env[Env.AUTH_TOKEN_URL]) == ("rag-page", EXTERNAL["tokenUrl"])
    assert env[Env.AUTH_AUTHORIZE_URL] == EXTERNAL["authorizeUrl"]
    assert Env.AUTH_LOGOUT_URL not in env
    assert not [r for r in run.resources if r.type.startswith("aws:cognito/")]


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({**EXTERNAL, "tokenUrl": None}, "needs tokenUrl too"),
        ({**EXTERNAL, "tokenUrl": "https://login.example.com/t; script-src *"}, f"{PROJECT}:auth.tokenUrl"),
        (
            {
                "cognito": {"enabled": True},
                "clientId": "x",
                "authorizeUrl": "https://a/",
                "tokenUrl": "https://t/",
            },
            "need issuer",
        ),
    ],
    ids=["partial", "csp-breaking", "with-cognito"],
)
def test_a_bad_page_sign_in_config_fails_naming_the_key(auth: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_stack_config("staging", with_auth({k: v for k, v in auth.items() if v is not None}))
