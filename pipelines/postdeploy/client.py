"""A thin HTTP client for the routes the suite exercises.

Routes and header names are the API's contract (`service.contract`): `GET /health`
(no auth), `POST /v1/query`, `POST /v1/search` and `GET /v1/documents` (API key required, 401 otherwise).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from service.contract import API_KEY_HEADER, REQUEST_ID_HEADER

HEALTH_PATH = "/health"
QUERY_PATH = "/v1/query"
SEARCH_PATH = "/v1/search"
DOCUMENTS_PATH = "/v1/documents"


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any

    def field(self, name: str) -> Any:
        return self.body.get(name) if isinstance(self.body, dict) else None


class ApiClient:
    """One API under test; `transport` lets unit tests swap the network for a fake."""

    def __init__(
        self, base_url: str, api_key: str, timeout: float = 30.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self._api_key = api_key
        # Every request carries a run-specific id so the API's logs can be joined to this run.
        self._run_id = f"postdeploy-{uuid.uuid4().hex[:12]}"
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def _headers(self, api_key: str | None) -> dict[str, str]:
        headers = {REQUEST_ID_HEADER: self._run_id}
        if api_key is not None:
            headers[API_KEY_HEADER] = api_key
        return headers

    def _send(self, method: str, path: str, payload: dict[str, Any] | None, api_key: str | None) -> Reply:
        response = self._http.request(method, path, json=payload, headers=self._headers(api_key))
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        return Reply(response.status_code, body)

    def health(self) -> Reply:
        return self._send("GET", HEALTH_PATH, None, None)

    def query(self, question: str, top_k: int = 5, api_key: str | None = "") -> Reply:
        """`api_key=""` sends the configured key, `None` sends none, any other string is sent as is."""
        key = self._api_key if api_key == "" else api_key
        return self._send("POST", QUERY_PATH, {"question": question, "top_k": top_k}, key)

    def search(self, query: str, top_k: int = 5, mode: str | None = None) -> Reply:
        payload: dict[str, Any] = {"query": query, "top_k": top_k}
        if mode is not None:
            payload["mode"] = mode
        return self._send("POST", SEARCH_PATH, payload, self._api_key)

    def search_as(self, query: str, *, api_key: str, workspace: str) -> Reply:
        """A search with another key in one workspace (issue 15's reader-key checks)."""
        return self._send("POST", SEARCH_PATH, {"query": query, "top_k": 1, "workspace": workspace}, api_key)

    def request_as(self, method: str, path: str, *, api_key: str, workspace: str) -> Reply:
        """A request with another key in one workspace, whatever its status (issue 15's reader-key
        checks): the workspace goes in the query string (one item at most) and, for a write, in
        the body, so the route refuses before it could act on anything."""
        params: dict[str, str | int] = {"limit": 1, "workspace": workspace}
        payload = None if method == "GET" else {"workspace": workspace}
        response = self._http.request(
            method, path, params=params, json=payload, headers=self._headers(api_key)
        )
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        return Reply(response.status_code, body)

    def document_statuses(self, limit: int = 1000) -> dict[str, str]:
        """Each listed document's ingestion status (`GET /v1/documents`, newest first)."""
        response = self._http.get(
            DOCUMENTS_PATH, params={"limit": limit}, headers=self._headers(self._api_key)
        )
        response.raise_for_status()
        rows = response.json()
        return {str(r["document_id"]): str(r["status"]) for r in rows if isinstance(r, dict)}


def cited_documents(reply: Reply) -> list[str]:
    """Document ids cited by a `/v1/query` reply, in citation order."""
    citations = reply.field("citations")
    if not isinstance(citations, list):
        return []
    return [str(c["document_id"]) for c in citations if isinstance(c, dict) and "document_id" in c]


def ranked_documents(reply: Reply) -> list[str]:
    """Distinct document ids of a `/v1/search` reply, best first (chunks of one document collapse)."""
    hits = reply.field("hits")
    seen: list[str] = []
    if isinstance(hits, list):
        for hit in hits:
            doc = hit.get("document_id") if isinstance(hit, dict) else None
            if isinstance(doc, str) and doc not in seen:
                seen.append(doc)
    return seen
