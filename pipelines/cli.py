"""`ragctl`: the operator's command line for the local platform and for deployed stacks."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from service.contract import SearchMode
from service.settings import Settings, SettingsError, load_settings

app = typer.Typer(
    help="Operate rag-platform: local platform, ingestion, queries, evaluation.", no_args_is_help=True
)
console = Console()
err = Console(stderr=True)

DataDir = Annotated[
    Path, typer.Option("--data-dir", envvar="DATA_DIR", help="Where the index and ledger live.")
]


def _settings(**overrides: object) -> Settings:
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as error:
        err.print(f"[red]{error}[/]")
        raise typer.Exit(2) from None


@app.command()
def dev(
    data_dir: DataDir = Path(".data"),
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="RAG_API_PORT", help="API and web page port.")] = 8000,
    aws_port: Annotated[int, typer.Option(envvar="RAG_AWS_PORT", help="Local S3/SQS (moto) port.")] = 4566,
    seed: Annotated[bool, typer.Option(help="Sync the bundled sample corpus on start.")] = True,
) -> None:
    """Start the local platform: S3/SQS, the ingestion worker, the API and the web page."""
    from pipelines.dev import run

    run(data_dir, host, port, aws_port, seed)


@app.command()
def worker() -> None:
    """Run the local ingester alone (the Lambda handler against the local queue)."""
    from pipelines.worker import main

    main()


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to upload to the document bucket.")],
    data_dir: DataDir = Path(".data"),
    wait: Annotated[
        bool, typer.Option(help="Follow the ledger until every document is indexed or failed.")
    ] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait.")] = 600,
) -> None:
    """Upload documents to the running local platform's bucket and follow their ingestion."""
    from pipelines.dev import PlatformInfo, follow, upload
    from service.ingest.parse import CONTENT_TYPES

    try:
        info = PlatformInfo.load(data_dir)
    except FileNotFoundError as error:
        err.print(f"[red]{error}[/]")
        raise typer.Exit(1) from None
    files: list[Path] = []
    for path in paths:
        if not path.exists():
            err.print(f"[red]{path}: no such file or directory[/]")
            raise typer.Exit(2)
        files.extend(
            sorted(p for p in path.rglob("*") if p.suffix.lower() in CONTENT_TYPES)
            if path.is_dir()
            else [path]
        )
    since = time.time() - 1
    keys = upload(info, files, root=Path.cwd().resolve())
    console.print(f"uploaded {len(keys)} document(s) to s3://{info.document_bucket}")
    if wait:
        done = follow(info, keys, since, timeout)
        failed = sorted(k for k, s in done.items() if s == "failed")
        missing = sorted(set(keys) - set(done))
        for key in failed:
            err.print(f"[red]failed:[/] {key}")
        for key in missing:
            err.print(f"[yellow]still processing after {timeout:.0f}s:[/] {key}")
        if failed or missing:
            raise typer.Exit(1)


def _print_hits(hits: list[dict[str, object]]) -> None:
    table = Table("#", "score", "document", "snippet")
    for number, hit in enumerate(hits, 1):
        table.add_row(str(number), f"{hit['score']:.3f}", str(hit["document_id"]), str(hit["snippet"])[:160])
    console.print(table)


@app.command()
def search(
    text: str,
    top_k: Annotated[int, typer.Option("--top-k", "-k")] = 5,
    mode: Annotated[SearchMode | None, typer.Option(help="bm25, vector or hybrid.")] = None,
    data_dir: DataDir = Path(".data"),
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Search the local index in-process."""
    from service.wiring import Container

    retrieval = Container(_settings(data_dir=data_dir)).retriever.search(text, top_k, mode)
    hits = [h.model_dump(mode="json") for h in retrieval.hits]
    if as_json:
        print(json.dumps({"mode": retrieval.mode, "hits": hits, "timings_ms": retrieval.timings_ms}))
    else:
        _print_hits(hits)


@app.command()
def query(
    text: str,
    top_k: Annotated[int, typer.Option("--top-k", "-k")] = 5,
    mode: Annotated[SearchMode | None, typer.Option(help="bm25, vector or hybrid.")] = None,
    data_dir: DataDir = Path(".data"),
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Answer a question with citations, in-process against the local index."""
    from service.models import QueryRequest
    from service.wiring import Container

    response = Container(_settings(data_dir=data_dir)).query_service.answer(
        QueryRequest(question=text, top_k=top_k, mode=mode)
    )
    if as_json:
        print(response.model_dump_json())
        return
    console.print(response.answer)
    for citation in response.citations:
        console.print(f"  [{citation.number}] {citation.title} — {citation.source}")
    console.print(f"[dim]{response.mode}, {response.search_mode}, {response.timings_ms.get('total')} ms[/]")


@app.command(name="eval")
def eval_(
    dataset: Annotated[Path, typer.Option(help="A BEIR-layout directory.", exists=True, file_okay=False)],
    mode: Annotated[
        list[SearchMode] | None, typer.Option(help="Modes to run (repeatable); all by default.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly one JSON object on stdout.")] = False,
) -> None:
    """Evaluate retrieval on a BEIR collection in an isolated temporary index."""
    from pipelines.evaluate import evaluate
    from service.ingest.chunking import Chunker
    from service.wiring import build_embedder

    settings = _settings()
    modes = mode or list(SearchMode)
    result = evaluate(
        dataset,
        modes,
        build_embedder(settings),
        Chunker(settings.chunk_size, settings.chunk_overlap),
        alpha=settings.hybrid_alpha,
        candidates=settings.hybrid_candidates,
    )
    if as_json:
        per_mode = result.pop("modes")
        assert isinstance(per_mode, dict)
        if len(modes) == 1:
            print(json.dumps({**result, "mode": modes[0].value, **per_mode[modes[0].value]}))
        else:
            print(json.dumps({**result, "modes": per_mode}))
        return
    table = Table("mode", *next(iter(result["modes"].values())).keys())  # type: ignore[attr-defined]
    for name, metrics in result["modes"].items():  # type: ignore[attr-defined]
        table.add_row(name, *(f"{v:.4f}" for v in metrics.values()))
    console.print(
        f"{result['dataset']}: {result['documents']} documents, {result['chunks']} chunks, "
        f"{result['queries']} queries"
    )
    console.print(table)


def main() -> None:  # pragma: no cover - console-script shim
    sys.exit(app())


if __name__ == "__main__":  # pragma: no cover
    app()
