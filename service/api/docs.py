"""Interactive API docs (/docs) and the favicon, served from the `fastapi-swagger` package.

FastAPI's default /docs loads Swagger UI from a CDN, so it is blank offline and on a laptop
behind a proxy. `fastapi-swagger` (https://pypi.org/project/fastapi-swagger/) ships Swagger
UI 5's built assets; version 5 is the first to render OpenAPI 3.1, which FastAPI emits
(`swagger-ui-bundle` ships 4.x: "Unable to render this definition"). Only the three files the
page uses are served, by name, so no request path reaches the disk.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, HTTPException, status
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from service.api.security_headers import CSP_HEADER, page_policy

DOCS_PATH = "/docs"
ASSETS_PATH = f"{DOCS_PATH}/assets"
FAVICON_PATH = "/favicon.ico"
_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
# The assets change only with the package version: let browsers keep them for a day.
_CACHE = {"Cache-Control": "public, max-age=86400"}


def _asset_dir() -> Path:
    return Path(str(files("fastapi_swagger").joinpath("resources")))


def docs_router(title: str, openapi_url: str) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    assets = _asset_dir()
    html = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=f"{title} - docs",
        swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=FAVICON_PATH,
        # The key box of "Authorize" is what a reader of the docs needs; no OAuth flows here.
        oauth2_redirect_url=None,
    ).body
    rendered = bytes(html).decode("utf-8")
    docs_headers = {CSP_HEADER: page_policy(rendered)}

    @router.get(DOCS_PATH)
    def docs() -> HTMLResponse:
        return HTMLResponse(rendered, headers=docs_headers)

    @router.get(f"{ASSETS_PATH}/{{name}}")
    def asset(name: str) -> FileResponse:
        media_type = _ASSETS.get(name)
        if media_type is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such asset")
        return FileResponse(assets / name, media_type=media_type, headers=_CACHE)

    @router.get(FAVICON_PATH)
    def favicon() -> FileResponse:
        return FileResponse(assets / "favicon-32x32.png", media_type="image/png", headers=_CACHE)

    return router
