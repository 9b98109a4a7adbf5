"""The search domain's stand-in for the artifact smoke: osmem-server behind a small proxy that
answers the OpenSearch security plugin's REST API, which osmem does not implement.

Amazon OpenSearch Service with fine-grained access control serves `/_plugins/_security/api/*`
(https://docs.opensearch.org/latest/security/access-control/api/); the provisioner writes its
roles and role mappings there. The proxy keeps what was written and forwards every other
request to osmem, with one change: index and template bodies get osmem's stand-ins for the two
analysis pieces it lacks (no `predicate_token_filter`; an index-time `pattern` tokenizer that
indexes the separators), as the contract suite's `OsmemEngine` does. The shipped analyzer
itself is checked on the real engines in CI (tests/contract/test_analyzer_parity.py).
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from service.search import mappings

SECURITY_API = "/_plugins/_security/api/"
# Hop-by-hop headers are the proxy's own business (RFC 9110, section 7.6.1).
_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"})


def osmem_stand_ins(body: bytes) -> bytes:
    """An index or template body with osmem's stand-ins in its analysis, else `body` unchanged."""
    try:
        document = json.loads(body)
    except ValueError:
        return body
    if not isinstance(document, dict):
        return body
    settings = document.get("template", document).get("settings", {})
    analysis = settings.get("index", settings).get("analysis") if isinstance(settings, dict) else None
    if not isinstance(analysis, dict) or mappings.ANALYZER not in analysis.get("analyzer", {}):
        return body
    analysis.setdefault("filter", {})[mappings.LONG_TOKEN_FILTER] = {
        "type": "length",
        "max": mappings.MAX_TOKEN_BYTES - 1,
    }
    analysis["analyzer"][mappings.ANALYZER]["tokenizer"] = "standard"
    analysis.pop("tokenizer", None)
    return json.dumps(document).encode()


class SecurityShim(ThreadingHTTPServer):
    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.security: dict[str, Any] = {}

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: SecurityShim

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reply(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in _HOP and name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _security(self, body: bytes) -> None:
        key = self.path.split("?", 1)[0][len(SECURITY_API) :]
        if self.command in {"PUT", "PATCH"}:
            self.server.security[key] = json.loads(body or b"{}")
            answer: Any = {"status": "OK", "message": f"'{key}' updated."}
        elif key in self.server.security:
            answer = {key.rsplit("/", 1)[-1]: self.server.security[key]}
        else:
            self._reply(404, b'{"status":"NOT_FOUND"}', [("Content-Type", "application/json")])
            return
        self._reply(200, json.dumps(answer).encode(), [("Content-Type", "application/json")])

    def _forward(self) -> None:
        body = self._body()
        if self.path.startswith(SECURITY_API):
            self._security(body)
            return
        connection = http.client.HTTPConnection(*self.server.upstream, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP | {"host"}}
            if self.command == "PUT":
                body = osmem_stand_ins(body)
                headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
            connection.request(self.command, self.path, body=body or None, headers=headers)
            response = connection.getresponse()
            self._reply(response.status, response.read(), response.getheaders())
        finally:
            connection.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _forward


@contextmanager
def security_shim(upstream: str) -> Iterator[SecurityShim]:
    shim = SecurityShim(upstream)
    thread = threading.Thread(target=shim.serve_forever, daemon=True)
    thread.start()
    try:
        yield shim
    finally:
        shim.shutdown()
        shim.server_close()
