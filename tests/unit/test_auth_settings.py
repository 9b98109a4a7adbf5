"""Auth settings (issue 15): bad sign-in configuration fails naming the variable, and a stack that
lost its keys table or pepper secret fails at cold start instead of accepting only the bootstrap key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from service.access import Role
from service.api.auth_wiring import build_key_store, build_pepper
from service.settings import Settings, SettingsError

CLOUD = {
    "environment": "staging",
    "search_backend": "opensearch",
    "search_endpoint": "https://search.example",
}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param({"auth_issuer": "https://login.example"}, "AUTH_AUDIENCE is required", id="no-audience"),
        pytest.param(
            {"auth_issuer": "http://login.example", "auth_audience": "a"},
            "must be an https URL",
            id="http-issuer",
        ),
        pytest.param({"auth_algorithms": "RS256,HS256"}, "AUTH_ALGORITHMS", id="hmac-algorithm"),
        pytest.param({"auth_algorithms": "none"}, "AUTH_ALGORITHMS", id="none-algorithm"),
        pytest.param({"auth_group_map": "{not json"}, "AUTH_GROUP_MAP is not JSON", id="group-map-json"),
        pytest.param(
            {"auth_group_map": '{"eng": {"workspaces": ["default"], "role": "owner"}}'},
            "role must be one of reader, writer, admin",
            id="group-map-role",
        ),
        pytest.param(
            {"auth_group_map": '{"eng": {"workspaces": ["Not_Valid"], "role": "reader"}}'},
            "workspace id",
            id="group-map-workspace",
        ),
        pytest.param({"auth_dev_tokens": True}, "AUTH_ISSUER is required", id="dev-without-issuer"),
        pytest.param(
            {**CLOUD, "auth_dev_tokens": True, "auth_issuer": "urn:x", "auth_audience": "a"},
            "local platform only",
            id="dev-tokens-in-a-stack",
        ),
    ],
)
def test_bad_sign_in_settings_name_the_variable(tmp_path: Path, values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings.model_validate({"data_dir": tmp_path, **values})


def test_a_group_map_reads_from_json(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {"data_dir": tmp_path, "auth_group_map": '{"ops": {"workspaces": ["*"], "role": "Admin"}}'}
    )
    assert settings.auth_group_map["ops"].as_role is Role.ADMIN


def test_the_jwks_defaults_to_the_issuers_well_known_path(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {
            "data_dir": tmp_path,
            "auth_issuer": "https://cognito-idp.eu-west-1.amazonaws.com/pool/",
            "auth_audience": "c",
        }
    )
    assert settings.jwks_url == "https://cognito-idp.eu-west-1.amazonaws.com/pool/.well-known/jwks.json"


def test_a_stack_without_its_keys_table_or_pepper_fails_naming_it(tmp_path: Path) -> None:
    settings = Settings.model_validate({"data_dir": tmp_path, **CLOUD})
    with pytest.raises(SettingsError, match="KEYS_TABLE is required"):
        build_key_store(settings)
    with pytest.raises(SettingsError, match="API_KEY_PEPPER_SECRET_ARN is required"):
        build_pepper(settings)


def test_the_stack_pepper_is_read_from_its_secret_when_a_key_is_checked(tmp_path: Path) -> None:
    arns: list[str] = []

    def fetch(arn: str) -> str:
        arns.append(arn)
        return "x" * 48

    settings = Settings.model_validate(
        {"data_dir": tmp_path, **CLOUD, "api_key_pepper_secret_arn": "arn:pepper"}
    )
    pepper = build_pepper(settings, fetch)
    # Nothing is fetched until a key is checked; then the configured secret is read
    assert arns == []
    assert pepper() == b"x" * 48
    assert arns == ["arn:pepper"]


def test_without_an_issuer_the_api_never_imports_the_jose_library(tmp_path: Path) -> None:
    # joserfc and cryptography cost about half a second of a Lambda cold start: only stacks that
    # accept tokens pay it. A fresh interpreter, as a cold start is.
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from service.api.auth_wiring import build_authenticator\n"
        "from service.settings import Settings\n"
        f"build_authenticator(Settings(data_dir=Path({str(tmp_path)!r})), ('k',))\n"
        "print(sorted(m for m in ('joserfc', 'cryptography') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
