"""The local platform's development issuer: the OIDC endpoints the page's sign-in needs, offline.

The page signs in with the authorization-code flow and PKCE (RFC 7636) against whatever issuer is
configured. Locally that issuer is this module, signing with the data directory's development key
(service/api/tokens_dev.py), so the same page code, token exchange and bearer path run on a laptop
and in tests as against Cognito:

- `GET  /dev-issuer/.well-known/openid-configuration`: the discovery document (OIDC Discovery 1.0);
- `GET  /dev-issuer/authorize`: a tiny form to pick the user and groups; with `user` given, it
  redirects back to the page with a one-time code bound to the PKCE challenge;
- `POST /dev-issuer/token`: the code and its verifier for an ID token (RFC 6749 section 4.1.3);
- `GET  /.well-known/jwks.json`: the public key (already served for `ragctl token issue`).

Mounted only when `AUTH_DEV_TOKENS` is on, which the settings refuse outside `ENVIRONMENT=local`:
a Lambda never has these routes. There is no password: anyone who can reach the local API could
already read its data directory. Codes live in memory for `CODE_TTL_SECONDS`, once each; a restart
forgets them, which only means signing in again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from service.api.security_headers import CSP_HEADER, page_policy
from service.api.tokens_dev import (
    DEV_ALGORITHM,
    DEV_AUDIENCE,
    DEV_ISSUER,
    DEV_JWKS_PATH,
    DEV_TOKEN_TTL_SECONDS,
    issue_dev_token,
)
from service.settings import Settings

DEV_ISSUER_PREFIX = "/dev-issuer"
DISCOVERY_PATH = f"{DEV_ISSUER_PREFIX}/.well-known/openid-configuration"
AUTHORIZE_PATH = f"{DEV_ISSUER_PREFIX}/authorize"
TOKEN_PATH = f"{DEV_ISSUER_PREFIX}/token"
# The page's public client: the development tokens' audience, as Cognito's audience is its client id.
DEV_CLIENT_ID = DEV_AUDIENCE
# The page's own URL is the one redirect URI (RFC 6749 section 3.1.2: exact match).
PAGE_PATH = "/"
# RFC 6749 section 4.1.2: "A maximum authorization code lifetime of 10 minutes is RECOMMENDED";
# the page redeems its code within a second, so one minute is plenty.
CODE_TTL_SECONDS = 60
# RFC 7636 section 4.1: code_verifier = 43*128unreserved; section 4.2: an S256 challenge is the
# base64url of a SHA-256 digest without padding, 43 characters.
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")
# The same bounds as a document's allowed users and groups (docs/access-control.md).
_NAME = re.compile(r"[^\s,][^,]{0,254}[^\s,]|[^\s,]")
_STATE_MAX = 512
# RFC 6749 section 5.1: token responses must not be cached.
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@dataclass(frozen=True)
class CodeGrant:
    """What a code stands for: who signed in, for which client and page, bound to which challenge."""

    user: str
    groups: tuple[str, ...]
    client_id: str
    redirect_uri: str
    code_challenge: str
    nonce: str | None
    expires_at: float


class AuthorizationCodes:
    """One-time codes in memory: `redeem` removes a code whatever happens next, so it is used once."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._given_clock = clock
        self._grants: dict[str, CodeGrant] = {}
        self._lock = threading.Lock()

    def _clock(self) -> float:
        return self._given_clock() if self._given_clock else time.monotonic()

    def issue(self, grant_for: Callable[[float], CodeGrant]) -> str:
        code = secrets.token_urlsafe(32)
        with self._lock:
            now = self._clock()
            # Drop expired codes so an idle tab's abandoned sign-ins do not pile up.
            self._grants = {c: g for c, g in self._grants.items() if g.expires_at > now}
            self._grants[code] = grant_for(now + CODE_TTL_SECONDS)
        return code

    def redeem(self, code: str) -> CodeGrant | None:
        with self._lock:
            grant = self._grants.pop(code, None)
            if grant is None or grant.expires_at <= self._clock():
                return None
            return grant


def s256_challenge(verifier: str) -> str:
    """RFC 7636 section 4.2: BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _page_url(request: Request) -> str:
    return str(request.base_url).rstrip("/") + PAGE_PATH


def _names(raw: str) -> tuple[str, ...] | None:
    names = tuple(n.strip() for n in raw.split(",") if n.strip())
    return names if all(_NAME.fullmatch(n) for n in names) and len(names) <= 100 else None


def _valid_authorization_request(query: Mapping[str, str], page_url: str) -> bool:
    return (
        query.get("client_id") == DEV_CLIENT_ID
        and query.get("redirect_uri") == page_url
        and query.get("response_type") == "code"
        and query.get("code_challenge_method") == "S256"  # "plain" gives no protection
        and bool(_CHALLENGE.fullmatch(query.get("code_challenge", "")))
        and "openid" in query.get("scope", "").split()
        and len(query.get("state", "")) <= _STATE_MAX
    )


def _refused(error: str) -> JSONResponse:
    # RFC 6749 section 5.2's error codes only: never which check failed or why.
    return JSONResponse({"error": error}, status_code=400, headers=_NO_STORE)


_FORM = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Development sign-in</title>
<style>body {{ font-family: system-ui, sans-serif; max-width: 30rem; margin: 3rem auto; }}
label {{ display: block; margin: .8rem 0; }} input {{ width: 100%; padding: .4rem; }}</style></head>
<body><h1>Development sign-in</h1>
<p>The local platform's built-in issuer: pick who to be. Groups map to workspaces and roles by
<code>AUTH_GROUP_MAP</code>.</p>
<form method="get" action="{action}">
{hidden}
<label>User <input name="user" value="dev@example.com" required maxlength="256"></label>
<label>Groups (comma-separated) <input name="groups" value="readers" maxlength="2000"></label>
<button type="submit">Sign in</button>
</form></body></html>
"""


def dev_issuer_router(settings: Settings, codes: AuthorizationCodes | None = None) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    store = codes or AuthorizationCodes()

    @router.get(DISCOVERY_PATH)
    def discovery(request: Request) -> dict[str, Any]:
        base = str(request.base_url).rstrip("/")
        return {
            "issuer": DEV_ISSUER,
            "authorization_endpoint": base + AUTHORIZE_PATH,
            "token_endpoint": base + TOKEN_PATH,
            "jwks_uri": base + DEV_JWKS_PATH,
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code"],
            "code_challenge_methods_supported": ["S256"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [DEV_ALGORITHM],
            "scopes_supported": list(settings.auth_scopes),
            "token_endpoint_auth_methods_supported": ["none"],
        }

    @router.get(AUTHORIZE_PATH, response_model=None)
    def authorize(request: Request) -> HTMLResponse | RedirectResponse | JSONResponse:
        query = request.query_params
        if not _valid_authorization_request(query, _page_url(request)):
            # RFC 6749 section 4.1.2.1: with a wrong client or redirect URI, never redirect anywhere;
            # the other errors could go back to the page, but the page only needs to learn "no".
            return _refused("invalid_request")
        state = query.get("state", "")
        if "user" not in query:
            oauth = {k: v for k, v in query.items() if k not in ("user", "groups")}
            hidden = "\n".join(
                f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                for k, v in oauth.items()
            )
            body = _FORM.format(action=html.escape(AUTHORIZE_PATH), hidden=hidden)
            return HTMLResponse(body, headers={CSP_HEADER: page_policy(body), **_NO_STORE})
        user = query.get("user", "").strip()
        groups = _names(query.get("groups", ""))
        if not _NAME.fullmatch(user) or groups is None:
            return _refused("invalid_request")
        code = store.issue(
            lambda expires_at: CodeGrant(
                user=user,
                groups=groups,
                client_id=DEV_CLIENT_ID,
                redirect_uri=_page_url(request),
                code_challenge=query["code_challenge"],
                nonce=query.get("nonce"),
                expires_at=expires_at,
            )
        )
        answer = {"code": code, **({"state": state} if state else {})}
        return RedirectResponse(
            f"{_page_url(request)}?{urlencode(answer)}", status_code=302, headers=_NO_STORE
        )

    @router.post(TOKEN_PATH)
    async def token(request: Request) -> JSONResponse:
        form = _form(await request.body())
        if form is None:
            return _refused("invalid_request")
        if form.get("grant_type") != "authorization_code":
            return _refused("unsupported_grant_type")
        code, verifier = form.get("code", ""), form.get("code_verifier", "")
        # Redeemed first: a wrong verifier also spends the code, so it cannot be guessed at.
        grant = store.redeem(code) if code else None
        if (
            grant is None
            or form.get("client_id") != grant.client_id
            or form.get("redirect_uri") != grant.redirect_uri
            or not _VERIFIER.fullmatch(verifier)
            or not hmac.compare_digest(s256_challenge(verifier), grant.code_challenge)
        ):
            return _refused("invalid_grant")
        id_token = issue_dev_token(
            settings.data_dir,
            user=grant.user,
            groups=grant.groups,
            groups_claim=settings.auth_groups_claim,
            extra_claims={"email": grant.user, **({"nonce": grant.nonce} if grant.nonce else {})},
        )
        return JSONResponse(
            {
                "id_token": id_token,
                # The API accepts ID tokens; the access token is the same token, as Cognito's would
                # carry no audience (docs/access-control.md).
                "access_token": id_token,
                "token_type": "Bearer",
                "expires_in": DEV_TOKEN_TTL_SECONDS,
                "scope": " ".join(settings.auth_scopes),
            },
            headers=_NO_STORE,
        )

    return router


def _form(body: bytes) -> Mapping[str, str] | None:
    """An `application/x-www-form-urlencoded` body, each parameter at most once (RFC 6749 section 3.2)."""
    try:
        parsed = parse_qs(body.decode("ascii"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        return None
    if any(len(values) != 1 for values in parsed.values()):
        return None
    return {k: v[0] for k, v in parsed.items()}
