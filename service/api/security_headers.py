"""Browser security headers on every response, and a Content-Security-Policy per HTML page.

Every response gets `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY` and
`Referrer-Policy: no-referrer`. JSON responses get `default-src 'none'`: nothing they carry
should ever run or load. HTML pages (the web page, /docs) set their own policy from
`page_policy`, which allows their own inline `<script>`/`<style>` blocks by SHA-256 hash
(CSP Level 2, https://www.w3.org/TR/CSP2/#script-src-hash-usage) instead of
`'unsafe-inline'`, and nothing from another origin.
"""

from __future__ import annotations

import base64
import hashlib
import re

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP_HEADER = "Content-Security-Policy"
FIXED_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
_CONNECT_SOURCE = re.compile(r"https://[^\s;,'\"]+")


def is_connect_source(url: str) -> bool:
    """Whether `url` is one https URL that can stand in a CSP source list: a space, comma,
    semicolon or quote would add a source or a directive. Settings check sign-in URLs with it."""
    return bool(_CONNECT_SOURCE.fullmatch(url))


_INLINE = re.compile(r"<(script|style)(?:\s[^>]*)?>(.*?)</\1>", re.DOTALL | re.IGNORECASE)


def _hash(source: str) -> str:
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def page_policy(html: str, connect: tuple[str, ...] = ()) -> str:
    """A policy for `html`: same-origin resources, plus its own inline blocks by hash.

    `connect` adds exact URLs the page may fetch from another origin: the sign-in's token endpoint
    (the code exchange, service/api/static/index.html). A source with a path matches that path
    only (CSP Level 3, https://www.w3.org/TR/CSP3/#match-paths), so the issuer's other endpoints
    stay closed. Each must be one URL: a space, comma, semicolon or quote would add a source or
    a directive, and is refused here as the settings refuse it (service/settings.py).
    """
    for source in connect:
        if not is_connect_source(source):
            raise ValueError(f"not a single https URL: {source!r}")
    blocks = [(kind.lower(), body) for kind, body in _INLINE.findall(html) if body.strip()]
    scripts = [_hash(body) for kind, body in blocks if kind == "script"]
    styles = [_hash(body) for kind, body in blocks if kind == "style"]
    return "; ".join(
        [
            "default-src 'self'",
            " ".join(["script-src 'self'", *scripts]),
            " ".join(["style-src 'self'", *styles]),
            "img-src 'self' data:",
            " ".join(["connect-src 'self'", *connect]),
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'self'",
        ]
    )


class SecurityHeadersMiddleware:
    """Adds the fixed headers, and `API_POLICY` where the route set no policy of its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in FIXED_HEADERS.items():
                    headers.setdefault(name, value)
                headers.setdefault(CSP_HEADER, API_POLICY)
            await send(message)

        await self.app(scope, receive, send_with_headers)
