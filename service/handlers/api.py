"""Lambda entry point for the RAG API: FastAPI behind Mangum (API Gateway HTTP API payload v2)."""

from __future__ import annotations

from mangum import Mangum

from service.api.app import create_app
from service.handlers.runtime import container

handler = Mangum(create_app(container()), lifespan="off")
