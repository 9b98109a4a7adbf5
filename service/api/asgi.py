"""ASGI entry for uvicorn in the local platform: `uvicorn --factory service.api.asgi:app_from_env`."""

from __future__ import annotations

from fastapi import FastAPI

from service.api.app import create_app
from service.handlers.runtime import container


def app_from_env() -> FastAPI:
    built = container()
    # Load the model at start, not on the first question.
    built.embedder.embed_query("warm up")
    return create_app(built)
