"""Signed-in users' tokens (issue 15 item 3): claims, signature, algorithms, the JWKS cache and groups."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, RSAKey

from service.access import Role, authorize
from service.api.tokens import JwksCache, JwksUnavailable, TokenPolicy, TokenVerifier, grants_for
from service.api.tokens_dev import DEV_AUDIENCE, DEV_ISSUER, dev_jwks, ensure_dev_key, issue_dev_token
from service.settings import GroupGrant

GROUPS = {
    "eng": GroupGrant(workspaces=("eng",), role="writer"),
    "all-readers": GroupGrant(workspaces=("eng", "sales"), role="reader"),
    "ops": GroupGrant(workspaces=("*",), role="admin"),
}
POLICY = TokenPolicy(issuer=DEV_ISSUER, audience=DEV_AUDIENCE, algorithms=("ES256",), group_map=GROUPS)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class CountingJwks:
    """A JWKS endpoint whose keys the test rotates, counting fetches."""

    def __init__(self, *keys: ECKey) -> None:
        self.keys = list(keys)
        self.fetches = 0
        self.fail = False

    def __call__(self) -> Mapping[str, Any]:
        self.fetches += 1
        if self.fail:
            raise ConnectionError("issuer down")
        return {"keys": [k.as_dict(private=False) for k in self.keys]}


def ec_key(kid: str) -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": kid, "alg": "ES256", "use": "sig"})


def sign(key: Any, claims: dict[str, Any], alg: str = "ES256", kid: str | None = None) -> str:
    header = {"alg": alg, "kid": kid if kid is not None else key.kid}
    return jwt.encode(header, claims, key, algorithms=[alg])


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": DEV_ISSUER,
        "aud": DEV_AUDIENCE,
        "sub": "ann",
        "iat": now,
        "exp": now + 600,
        "groups": ["eng"],
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


@pytest.fixture
def key() -> ECKey:
    return ec_key("k1")


@pytest.fixture
def verifier(key: ECKey) -> TokenVerifier:
    return TokenVerifier(POLICY, JwksCache(CountingJwks(key)))


def test_a_valid_token_becomes_a_principal_from_its_user_and_groups(
    verifier: TokenVerifier, key: ECKey
) -> None:
    principal = verifier.verify(sign(key, claims(groups=["eng", "unmapped"])))
    assert principal is not None
    assert principal.user == "ann"
    assert principal.groups == frozenset({"eng", "unmapped"})
    assert (principal.role, principal.workspaces) == (Role.WRITER, frozenset({"eng"}))
    # and the seam accepts it for its workspace and role, and no further
    assert authorize(principal, "eng", Role.WRITER).user == "ann"


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _swap_payload(token: str, **changes: Any) -> str:
    header, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body.update(changes)
    return ".".join([header, _b64(body), signature])


BAD_TOKENS: dict[str, Callable[[ECKey], str]] = {
    "expired": lambda key: sign(key, claims(exp=int(time.time()) - 120, iat=int(time.time()) - 700)),
    "no-expiry": lambda key: sign(key, claims(exp=None)),
    "not-yet-valid": lambda key: sign(key, claims(nbf=int(time.time()) + 600)),
    "wrong-audience": lambda key: sign(key, claims(aud="someone-else")),
    "no-audience": lambda key: sign(key, claims(aud=None)),
    "wrong-issuer": lambda key: sign(key, claims(iss="urn:evil")),
    "no-subject": lambda key: sign(key, claims(sub=None)),
    "tampered-payload": lambda key: _swap_payload(sign(key, claims()), groups=["ops"]),
    "tampered-signature": lambda key: sign(key, claims())[:-4] + "AAAA",
    "signed-by-another-key-with-the-same-kid": lambda key: sign(ec_key("k1"), claims()),
    "unknown-kid": lambda key: sign(ec_key("k-unknown"), claims()),
    "no-kid": lambda key: jwt.encode({"alg": "ES256"}, claims(), key),
    "alg-none": lambda key: ".".join([_b64({"alg": "none", "kid": key.kid}), _b64(claims()), ""]),
    "hs256-with-the-public-key-as-secret": lambda key: sign(
        OctKey.import_key(json.dumps(key.as_dict(private=False)).encode(), {"kid": "k1"}),
        claims(),
        alg="HS256",
    ),
    "algorithm-not-allowed": lambda key: sign(
        RSAKey.generate_key(2048, parameters={"kid": "k1"}), claims(), alg="RS256"
    ),
    "jwe-shaped": lambda key: "a.b.c.d.e",
    "garbage": lambda key: "not-a-token",
}


@pytest.mark.parametrize("name", sorted(BAD_TOKENS))
def test_every_invalid_token_is_refused_the_same_way(verifier: TokenVerifier, key: ECKey, name: str) -> None:
    # Given a token failing exactly one check / Then the verifier answers None, like every other failure
    assert verifier.verify(BAD_TOKENS[name](key)) is None


def test_an_unknown_kid_triggers_one_refetch_then_waits(key: ECKey) -> None:
    # Given a verifier that fetched the issuer's keys once
    source, clock = CountingJwks(key), Clock()
    verifier = TokenVerifier(POLICY, JwksCache(source, min_refetch_seconds=30, clock=clock))
    assert verifier.verify(sign(key, claims())) is not None
    assert source.fetches == 1
    # When the issuer rotates to a new key and a token signed with it arrives
    rotated = ec_key("k2")
    source.keys.append(rotated)
    clock.now += 31
    # Then one refetch finds it
    assert verifier.verify(sign(rotated, claims())) is not None
    assert source.fetches == 2
    # And a flood of unknown kids right after causes no further fetch
    for n in range(5):
        assert verifier.verify(sign(ec_key(f"junk-{n}"), claims())) is None
    assert source.fetches == 2
    # Until the minimum interval has passed: then one more
    clock.now += 31
    assert verifier.verify(sign(ec_key("junk-late"), claims())) is None
    assert source.fetches == 3


def test_the_keys_are_refreshed_when_the_cache_ages_out(key: ECKey) -> None:
    source, clock = CountingJwks(key), Clock()
    cache = JwksCache(source, max_age_seconds=3600, clock=clock)
    assert cache.key_for("k1") is not None
    assert cache.key_for("k1") is not None
    assert source.fetches == 1
    clock.now += 3600
    # A retired key disappears at the next refresh
    source.keys = [ec_key("k2")]
    assert cache.key_for("k1") is None
    assert source.fetches == 2


def test_an_unreachable_issuer_is_a_fault_not_a_bad_token(key: ECKey) -> None:
    # Given an issuer whose JWKS cannot be fetched at all
    source = CountingJwks(key)
    source.fail = True
    verifier = TokenVerifier(POLICY, JwksCache(source))
    # Then verification raises (the API answers 503), rather than calling the token invalid
    with pytest.raises(JwksUnavailable):
        verifier.verify(sign(key, claims()))


def test_keys_already_fetched_keep_working_while_the_issuer_is_down(key: ECKey) -> None:
    source, clock = CountingJwks(key), Clock()
    verifier = TokenVerifier(POLICY, JwksCache(source, max_age_seconds=60, clock=clock))
    assert verifier.verify(sign(key, claims())) is not None
    source.fail, clock.now = True, clock.now + 61
    assert verifier.verify(sign(key, claims())) is not None


@pytest.mark.parametrize(
    ("groups", "role", "workspaces"),
    [
        pytest.param(set(), Role.READER, set(), id="no-group-no-workspace"),
        pytest.param({"unmapped"}, Role.READER, set(), id="unmapped-only"),
        pytest.param({"all-readers"}, Role.READER, {"eng", "sales"}, id="reader"),
        # Highest role, in the workspaces of the groups granting it only: never a writer of sales
        pytest.param({"eng", "all-readers"}, Role.WRITER, {"eng"}, id="writer-and-reader"),
        pytest.param({"ops", "eng"}, Role.ADMIN, {"*"}, id="admin"),
    ],
)
def test_groups_map_to_a_role_without_escalation(groups: set[str], role: Role, workspaces: set[str]) -> None:
    assert grants_for(frozenset(groups), GROUPS) == (role, frozenset(workspaces))


def test_dev_tokens_verify_against_the_local_jwks(tmp_path: Path) -> None:
    # Given the local platform's development key
    ensure_dev_key(tmp_path)
    verifier = TokenVerifier(POLICY, JwksCache(lambda: dev_jwks(tmp_path)))
    # Then `ragctl token issue` tokens verify, and only the public half is published
    token = issue_dev_token(tmp_path, user="ann", groups=["eng"])
    assert verifier.verify(token) is not None
    assert all("d" not in k for k in dev_jwks(tmp_path)["keys"])
