"""`ragctl bench ...`: benchmarks of the local platform. Each prints one JSON object with --json."""

from __future__ import annotations

import json
from typing import Annotated

import typer

bench_app = typer.Typer(help="Benchmarks.", no_args_is_help=True)


@bench_app.command("query")
def query(
    sizes: Annotated[str, typer.Option(help="Index sizes in chunks, comma-separated.")] = "10000,100000",
    questions: Annotated[int, typer.Option(help="Timed questions per combination.")] = 300,
    warmup: Annotated[int, typer.Option(help="Untimed questions first, per combination.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly one JSON object on stdout.")] = False,
    engines: Annotated[
        str,
        typer.Option(
            help="k-NN engines, comma-separated: exact, projected, hnsw. From 500k chunks each is "
            "timed, with its recall@10 against exact search."
        ),
    ] = "exact",
) -> None:
    """p50/p95/p99 of search and of query (extractive), in-process and over HTTP, per index size,
    with build time and peak RSS; e.g. --sizes 1000000 --engines exact,projected for the 1M-chunk
    figures."""
    from functools import partial

    from pipelines.bench_query import ENGINES, run
    from pipelines.bench_query import engines as timed_engines
    from service.settings import load_settings
    from service.wiring import build_embedder

    make_embedder = partial(build_embedder, load_settings())
    names = [e.strip() for e in engines.split(",") if e.strip()]
    if unknown := sorted(set(names) - set(ENGINES)):
        raise typer.BadParameter(
            f"unknown engine(s) {unknown}; choose from {list(ENGINES)}", param_hint="--engines"
        )
    report = run(make_embedder, [int(s) for s in sizes.split(",")], questions, warmup, names)
    if as_json:
        print(json.dumps(report))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("chunks", "operation", "where", "p50 ms", "p95 ms", "p99 ms", "HTTP overhead p50")
    for size, result in report["sizes"].items():
        for engine, timed in timed_engines(result).items():
            for op in ("search", "query"):
                for where in ("in_process_ms", "http_ms"):
                    p = timed[op][where]
                    overhead = f"{timed[op]['http_overhead_p50_pct']}%" if where == "http_ms" else ""
                    label = f"{size} {engine}"
                    table.add_row(
                        label, op, where[:-3], f"{p['p50']}", f"{p['p95']}", f"{p['p99']}", overhead
                    )
    Console().print(table)
    Console().print(report["targets"])


@bench_app.command("scope")
def scope(
    sizes: Annotated[str, typer.Option(help="Index sizes in chunks, comma-separated.")] = "100000",
    questions: Annotated[int, typer.Option(help="Timed questions per case.")] = 200,
    warmup: Annotated[int, typer.Option(help="Untimed questions first, per case.")] = 10,
    engine: Annotated[str, typer.Option(help="k-NN engine: exact, projected, hnsw.")] = "exact",
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly one JSON object on stdout.")] = False,
) -> None:
    """p50/p95/p99 of k-NN and hybrid search when the scope or a filter excludes chunks (a second
    workspace, restricted chunks, a tag filter), per index size."""
    from pipelines.bench_query import ENGINES
    from pipelines.bench_scope import run
    from service.settings import load_settings
    from service.wiring import build_embedder

    if engine not in ENGINES:
        raise typer.BadParameter(
            f"unknown engine {engine!r}; choose from {list(ENGINES)}", param_hint="--engine"
        )
    report = run(
        build_embedder(load_settings()), [int(s) for s in sizes.split(",")], questions, warmup, engine
    )
    if as_json:
        print(json.dumps(report))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("chunks", "case", "allowed", "operation", "p50 ms", "p95 ms", "p99 ms")
    for size, result in report["sizes"].items():
        for case, timed in result["cases"].items():
            for op in ("knn_ms", "hybrid_search_ms"):
                p = timed[op]
                share = f"{timed['allowed_share']:.0%}"
                table.add_row(size, case, share, op[:-3], f"{p['p50']}", f"{p['p95']}", f"{p['p99']}")
    Console().print(table)


@bench_app.command("ingest")
def ingest(
    documents: Annotated[int, typer.Option(help="Documents in the synthetic corpus.")] = 12,
    paragraphs: Annotated[int, typer.Option(help="Paragraphs (about one chunk each) per document.")] = 48,
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly one JSON object on stdout.")] = False,
) -> None:
    """Chunks/s of the whole ingestion pipeline (queue included) vs the bare embedder, same chunks."""
    from pipelines.bench_ingest import run
    from service.settings import load_settings
    from service.wiring import build_embedder

    settings = load_settings()
    report = run(settings, build_embedder(settings), documents, paragraphs)
    if as_json:
        print(json.dumps(report))
        return
    for name, value in report.items():
        print(f"{name:>28}: {value}")
