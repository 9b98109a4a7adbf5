"""`ragctl keys create|list|revoke` and `ragctl token issue` on the local data directory (issue 15)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from service.access import Role
from service.api.keys import ScopedKeys, file_pepper, local_pepper_path, parse_key
from service.api.keys_sqlite import SqliteKeyStore, local_keys_path
from service.api.tokens import JwksCache, TokenPolicy, TokenVerifier
from service.api.tokens_dev import DEV_AUDIENCE, DEV_ISSUER, dev_jwks


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_a_created_key_is_printed_once_and_works(data_dir: Path) -> None:
    # When an operator creates a reader key for two workspaces
    code, out, _ = run(
        "keys", "create", "--name", "ci", "--role", "reader", "--workspace", "a", "--workspace", "b",
        "--data-dir", str(data_dir),
    )  # fmt: skip
    # Then stdout is the key alone, and it verifies as a reader of exactly those workspaces
    assert code == 0
    key = out.strip()
    parsed = parse_key(key)
    assert parsed is not None
    store = SqliteKeyStore(local_keys_path(data_dir))
    principal = ScopedKeys(store, file_pepper(local_pepper_path(data_dir))).verify(key)
    assert principal is not None
    assert (principal.role, principal.workspaces) == (Role.READER, frozenset({"a", "b"}))
    # and the pepper was created private
    assert stat.S_IMODE(local_pepper_path(data_dir).stat().st_mode) == 0o600
    # and `keys list` names it without ever showing the secret
    code, listing, _ = run("keys", "list", "--json", "--data-dir", str(data_dir))
    assert code == 0
    rows = [json.loads(line) for line in listing.splitlines()]
    assert [(r["id"], r["role"], r["workspaces"], r["state"]) for r in rows] == [
        (parsed[0], "reader", "a,b", "active")
    ]
    assert parsed[1] not in listing
    assert parsed[1] not in local_keys_path(data_dir).read_bytes().decode(errors="replace")


def test_revoke_marks_the_key_revoked(data_dir: Path) -> None:
    _, out, _ = run("keys", "create", "--name", "x", "--role", "writer", "--data-dir", str(data_dir))
    parsed = parse_key(out.strip())
    assert parsed is not None
    code, _, _ = run("keys", "revoke", parsed[0], "--data-dir", str(data_dir))
    assert code == 0
    assert (
        ScopedKeys(
            SqliteKeyStore(local_keys_path(data_dir)), file_pepper(local_pepper_path(data_dir))
        ).verify(out.strip())
        is None
    )
    _, listing, _ = run("keys", "list", "--json", "--data-dir", str(data_dir))
    assert json.loads(listing)["state"] == "revoked"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(("--role", "owner"), "reader, writer or admin", id="unknown-role"),
        pytest.param(("--role", "reader", "--workspace", "Not_Valid"), "workspace id", id="bad-workspace"),
        pytest.param(("--role", "reader", "--expires-in", "0d"), "positive number", id="zero-expiry"),
        pytest.param(("--role", "reader", "--expires-in", "soon"), "positive number", id="bad-expiry"),
    ],
)
def test_bad_input_names_the_problem_and_creates_nothing(
    data_dir: Path, args: tuple[str, ...], message: str
) -> None:
    code, out, err = run("keys", "create", "--name", "x", *args, "--data-dir", str(data_dir))
    assert code == 2
    assert message in " ".join((out + err).split())
    assert SqliteKeyStore(local_keys_path(data_dir)).list() == []


def test_revoking_an_unknown_or_malformed_id_fails(data_dir: Path) -> None:
    assert run("keys", "revoke", "0123456789abcdef", "--data-dir", str(data_dir))[0] == 1
    assert run("keys", "revoke", "rp_secret-looking", "--data-dir", str(data_dir))[0] == 2


def test_token_issue_signs_a_dev_token_the_api_accepts(data_dir: Path) -> None:
    code, out, _ = run("token", "issue", "--user", "ann", "--groups", "eng", "--data-dir", str(data_dir))
    assert code == 0
    verifier = TokenVerifier(
        TokenPolicy(DEV_ISSUER, DEV_AUDIENCE, ("ES256",)), JwksCache(lambda: dev_jwks(data_dir))
    )
    principal = verifier.verify(out.strip())
    assert principal is not None
    assert (principal.user, principal.groups) == ("ann", frozenset({"eng"}))
    assert json.loads(json.dumps(dev_jwks(data_dir)))["keys"][0]["kty"] == "EC"
