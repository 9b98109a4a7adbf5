"""Signed-in users: OIDC/JWT bearer tokens from one configured issuer, verified with joserfc.

Why joserfc: it is the JOSE library of the Authlib project (maintained, typed, RFC-by-RFC), it is
already in the lock (moto depends on it), and its `jwt.decode` takes a key *resolver*, so the
cached JWKS below decides which key a `kid` names. PyJWT's `PyJWKClient` refetches the JWKS on
every unknown `kid` without a rate limit, which lets anyone make the API hammer the issuer.

Checked for every token (RFC 8725, JWT Best Current Practices): a compact JWS of three parts; the
algorithm on the allow-list (asymmetric only; `service.settings.TOKEN_ALGORITHMS`); a `kid` the
issuer's JWKS holds; the signature; `iss` equal to the issuer; `aud` containing the audience;
`exp` present and in the future; `nbf`/`iat` not in the future; a `sub`. Any failure is the same
`None`: the API answers every one with one 401 body.

The JWKS is cached for `max_age`; a token whose `kid` is unknown triggers at most one refetch per
`min_refetch_seconds` (key rotation: the issuer publishes the new key before signing with it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from service.access import Principal, Role
from service.api.auth import SignInUnavailable
from service.settings import GroupGrant

JwksSource = Callable[[], Mapping[str, Any]]


# The issuer's keys could not be fetched and none are cached: the API answers 503, not 401.
JwksUnavailable = SignInUnavailable


class JwksCache:
    def __init__(
        self,
        fetch: JwksSource,
        *,
        max_age_seconds: float = 3600.0,
        min_refetch_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._max_age = max_age_seconds
        self._min_refetch = min_refetch_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: KeySet | None = None
        self._fetched_at = 0.0
        self.fetches = 0

    def _refresh(self, now: float) -> None:
        self._fetched_at = now
        self.fetches += 1
        try:
            self._keys = KeySet.import_key_set(dict(self._fetch()))  # type: ignore[arg-type]
        except Exception as error:
            if self._keys is None:
                raise JwksUnavailable(type(error).__name__) from error
            # Keep serving the keys we have: the issuer being briefly down is no reason to refuse
            # tokens that verified a minute ago. The next refetch is after `min_refetch` again.

    def _find(self, kid: str) -> Any | None:
        if self._keys is None:
            return None
        for key in self._keys.keys:
            if key.kid == kid:
                return key
        return None

    def _may_fetch(self, now: float) -> bool:
        return self.fetches == 0 or now - self._fetched_at >= self._min_refetch

    def key_for(self, kid: str) -> Any | None:
        """The issuer's key named `kid`, or None; raises `JwksUnavailable` if no keys can be had."""
        with self._lock:
            now = self._clock()
            stale = self._keys is None or now - self._fetched_at >= self._max_age
            if stale and self._may_fetch(now):
                self._refresh(now)
            if self._keys is None:
                raise JwksUnavailable("no keys fetched yet")
            key = self._find(kid)
            if key is None and self._may_fetch(now):
                self._refresh(now)
                key = self._find(kid)
            return key


@dataclass(frozen=True)
class TokenPolicy:
    issuer: str
    audience: str
    algorithms: tuple[str, ...]
    groups_claim: str = "groups"
    user_claim: str = "sub"
    group_map: Mapping[str, GroupGrant] = field(default_factory=dict)
    leeway_seconds: int = 30


def grants_for(groups: frozenset[str], group_map: Mapping[str, GroupGrant]) -> tuple[Role, frozenset[str]]:
    """The role and workspaces a user's groups grant.

    A principal has one role, so a user in several mapped groups gets the highest role among them,
    in the workspaces of the groups that grant that role only: being a reader of `b` and a writer
    of `a` never makes anyone a writer of `b`. No mapped group: a reader of no workspace (403s).
    """
    matched = [group_map[g] for g in sorted(groups) if g in group_map]
    if not matched:
        return Role.READER, frozenset()
    role = max(g.as_role for g in matched)
    return role, frozenset(w for g in matched if g.as_role == role for w in g.workspaces)


def _claim_strings(value: object) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset({value})
    if isinstance(value, list):
        return frozenset(v for v in value if isinstance(v, str))
    return frozenset()


def token_subject(sub: str) -> str:
    return f"user:{sub}"


class TokenVerifier:
    def __init__(self, policy: TokenPolicy, jwks: JwksCache, clock: Callable[[], float] = time.time) -> None:
        self.policy = policy
        self._jwks = jwks
        self._clock = clock
        self._registry = jwt.JWTClaimsRegistry(
            now=lambda: int(self._clock()),
            leeway=policy.leeway_seconds,
            iss={"essential": True, "value": policy.issuer},
            aud={"essential": True, "value": policy.audience},
            exp={"essential": True},
            sub={"essential": True},
        )

    def verify(self, token: str) -> Principal | None:
        """The token's principal, or None for any invalid token. Raises `JwksUnavailable`."""
        if token.count(".") != 2:
            return None  # a JWE or garbage; only signed tokens are accepted

        def resolve(guest: Any) -> Any:
            kid = guest.headers().get("kid")
            key = self._jwks.key_for(kid) if isinstance(kid, str) else None
            if key is None:
                raise JoseError("unknown kid")
            return key

        try:
            decoded = jwt.decode(token, resolve, algorithms=list(self.policy.algorithms))
            self._registry.validate(decoded.claims)
        except JwksUnavailable:
            raise
        except (JoseError, ValueError, TypeError, KeyError):
            return None
        claims = decoded.claims
        user = claims.get(self.policy.user_claim)
        if not isinstance(user, str) or not user:
            return None
        groups = _claim_strings(claims.get(self.policy.groups_claim))
        role, workspaces = grants_for(groups, self.policy.group_map)
        return Principal(
            subject=token_subject(str(claims["sub"])),
            role=role,
            workspaces=workspaces,
            user=user,
            groups=groups,
        )


def http_jwks(url: str, timeout: float = 5.0) -> JwksSource:
    """The issuer's JWKS over HTTPS (httpx, already a dependency of the API)."""

    def fetch() -> Mapping[str, Any]:
        import httpx

        response = httpx.get(url, timeout=timeout, follow_redirects=False)
        response.raise_for_status()
        body: Mapping[str, Any] = response.json()
        return body

    return fetch
