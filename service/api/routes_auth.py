"""Unauthenticated sign-in routes: what the page needs to offer sign-in, and the local JWKS."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from service.settings import Settings

AUTH_CONFIG_PATH = "/auth/config"


class AuthConfig(BaseModel):
    """Public facts about sign-in: never a secret (the app client is a public PKCE client)."""

    tokens: bool = Field(description="Whether bearer tokens are accepted at all.")
    issuer: str | None = None
    authorize_url: str | None = Field(None, description="The issuer's authorization endpoint (PKCE).")
    client_id: str | None = None
    development: bool = Field(False, description="Local development tokens (`ragctl token issue`).")


def auth_router(settings: Settings) -> APIRouter:
    router = APIRouter()

    @router.get(AUTH_CONFIG_PATH, tags=["ops"], summary="How to sign in, if signing in is configured.")
    def auth_config() -> AuthConfig:
        return AuthConfig(
            tokens=bool(settings.auth_issuer),
            issuer=settings.auth_issuer,
            authorize_url=settings.auth_authorize_url,
            client_id=settings.auth_client_id,
            development=settings.auth_dev_tokens,
        )

    if settings.auth_dev_tokens:
        from service.api.tokens_dev import DEV_JWKS_PATH, dev_jwks

        @router.get(DEV_JWKS_PATH, tags=["ops"], summary="The local development signing key (public).")
        def jwks() -> dict[str, Any]:
            return dict(dev_jwks(settings.data_dir))

    return router
