"""ASGI entry for uvicorn in the local platform: `uvicorn --factory service.api.asgi:app_from_env`."""

from __future__ import annotations

from fastapi import FastAPI

from service.api.app import create_app
from service.api.logs import build_logger, configure_process_logging
from service.runtime import container


def app_from_env() -> FastAPI:
    built = container()
    tune_inference_for_queries()
    logger = build_logger(built.settings.log_level)
    # uvicorn configured its loggers before calling this factory; send them through JSON too.
    configure_process_logging(logger)
    # Load the model at start, not on the first question.
    built.embedder.embed_query("warm up")
    return create_app(built, logger=logger)


def tune_inference_for_queries() -> None:
    """One compute thread per request for torch and BLAS (OpenBLAS/OpenMP) in the API process.

    The API embeds one short question per request and multiplies it by the vector matrix,
    several requests at a time (uvicorn's thread pool). Splitting such small operations
    over pool threads gains little, and on a busy machine the threads wait on each other.
    Measured on this 2-core box under load (`ragctl bench query`, docs/api.md "Performance"):
    MiniLM's query embedding took 80-130 ms at p50 with 2 threads and 20 ms with 1; the
    10k x 384 matrix-vector product 8 ms with 2 BLAS threads and 0.6 ms with 1. The ingestion
    worker, which embeds batches, is a separate process and keeps the defaults.
    """
    try:
        import torch
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:  # the Lambda artifact has neither; Bedrock embeds there
        return
    torch.set_num_threads(1)
    threadpool_limits(limits=1)
