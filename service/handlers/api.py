"""Lambda entry point for the RAG API: FastAPI behind Mangum (API Gateway HTTP API payload v2).

Built at import, in the init phase, so the first request does not pay for it.
"""

from __future__ import annotations

from service.api.lambda_handler import build_handler
from service.runtime import container

handler = build_handler(container())
