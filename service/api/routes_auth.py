"""Unauthenticated sign-in routes: what the page needs to offer sign-in, the sign-in library, and
locally the development issuer (service/api/dev_issuer.py) with its JWKS."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from service.settings import Settings

AUTH_CONFIG_PATH = "/auth/config"
# oidc-client-ts's browser build, vendored (service/api/static/VENDORED.md): no CDN, so the page
# signs in offline and its script-src stays 'self'.
SIGN_IN_SCRIPT_PATH = "/static/oidc-client-ts.min.js"
_SIGN_IN_SCRIPT = "static/oidc-client-ts.min.js"
# The file changes only with the vendored version: browsers may keep it for a day.
_CACHE = {"Cache-Control": "public, max-age=86400"}


class AuthConfig(BaseModel):
    """Public facts about sign-in: never a secret (the app client is a public PKCE client)."""

    tokens: bool = Field(description="Whether bearer tokens are accepted at all.")
    issuer: str | None = None
    authorize_url: str | None = Field(None, description="The issuer's authorization endpoint (PKCE).")
    token_url: str | None = Field(None, description="The issuer's token endpoint (code exchange).")
    logout_url: str | None = Field(None, description="The issuer's logout endpoint, if it has one.")
    client_id: str | None = None
    scopes: list[str] = Field(default_factory=list)
    development: bool = Field(False, description="Local development tokens (`ragctl token issue`).")


def auth_router(settings: Settings) -> APIRouter:
    router = APIRouter()

    @router.get(AUTH_CONFIG_PATH, tags=["ops"], summary="How to sign in, if signing in is configured.")
    def auth_config(request: Request) -> AuthConfig:
        config = AuthConfig(
            tokens=bool(settings.auth_issuer),
            issuer=settings.auth_issuer,
            authorize_url=settings.auth_authorize_url,
            token_url=settings.auth_token_url,
            logout_url=settings.auth_logout_url,
            client_id=settings.auth_client_id,
            scopes=list(settings.auth_scopes) if settings.auth_issuer else [],
            development=settings.auth_dev_tokens,
        )
        if settings.auth_dev_tokens:
            from service.api.dev_issuer import AUTHORIZE_PATH, DEV_CLIENT_ID, TOKEN_PATH

            # The development issuer is this server: its endpoints are on whatever origin the
            # page was loaded from (127.0.0.1 or localhost, any port).
            base = str(request.base_url).rstrip("/")
            config.authorize_url, config.token_url = base + AUTHORIZE_PATH, base + TOKEN_PATH
            config.client_id = DEV_CLIENT_ID
        return config

    @router.get(SIGN_IN_SCRIPT_PATH, include_in_schema=False)
    def sign_in_script() -> FileResponse:
        path = str(files("service.api").joinpath(_SIGN_IN_SCRIPT))
        return FileResponse(path, media_type="text/javascript", headers=_CACHE)

    if settings.auth_dev_tokens:
        from service.api.dev_issuer import dev_issuer_router
        from service.api.tokens_dev import DEV_JWKS_PATH, dev_jwks

        @router.get(DEV_JWKS_PATH, tags=["ops"], summary="The local development signing key (public).")
        def jwks() -> dict[str, Any]:
            return dict(dev_jwks(settings.data_dir))

        router.include_router(dev_issuer_router(settings))

    return router
