"""`ragctl`: the operator's command line for the local platform and for deployed stacks."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import click
import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipelines.bench import bench_app
from pipelines.keys_cli import keys_app, token_app
from pipelines.ops import checked_workspace, dlq_app, docs_app
from pipelines.platform_file import PlatformInfo, PlatformNotRunning, find_data_dir
from pipelines.workspaces import workspaces_app
from service.access import DEFAULT_WORKSPACE, AccessScope, operator_scope
from service.contract import SearchMode
from service.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from service.embed.protocol import Embedder
    from service.ingest.chunking import Chunker


def _plain_placeholders() -> None:
    """Show option values as TEXT, PATH, INTEGER... and flags with none.

    typer 0.29 prints Python annotations instead (`<bool>` after every flag, `<list[Path]>`),
    which read as placeholders nobody filled in.
    """
    from typer.core import TyperArgument, TyperOption

    names = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "path": "PATH", "Path": "PATH"}
    original = TyperOption.display_type_rich

    def display_type_rich(self: TyperOption | TyperArgument, ctx: click.Context) -> str | None:
        if getattr(self, "is_flag", False):
            return None
        shown = original(self, ctx)  # type: ignore[arg-type]
        if shown is None or not shown.startswith("<"):
            return shown
        label, many = shown.strip("<>."), shown.endswith("...")
        if label.startswith("list[") and label.endswith("]"):
            label, many = label[5:-1], True
        return names.get(label, label) + ("..." if many else "")

    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign, assignment]
    TyperArgument.display_type_rich = display_type_rich  # type: ignore[method-assign, assignment]


_plain_placeholders()
app = typer.Typer(
    help="Operate rag-platform: local platform, ingestion, queries, evaluation.", no_args_is_help=True
)
app.add_typer(bench_app, name="bench")
# Operator tools for the ledger, the DLQ and zero-downtime reindex.
app.add_typer(docs_app, name="docs")
app.add_typer(dlq_app, name="dlq")
app.add_typer(workspaces_app, name="workspaces")
# Issue 15: scoped API keys and local development tokens (pipelines/keys_cli.py).
app.add_typer(keys_app, name="keys")
app.add_typer(token_app, name="token")
console = Console()
err = Console(stderr=True, soft_wrap=True)  # an error is one line, however narrow the terminal

Workspace = Annotated[
    str,
    typer.Option("--workspace", "-w", help="The workspace to work in (`ragctl workspaces list`)."),
]
DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="The platform's data directory (index, ledger, platform.json). "
        "Default: $DATA_DIR, else ./.data if a platform runs there, else the checkout's .data.",
        show_default=False,
    ),
]


def _running(data_dir: Path | None) -> PlatformInfo:
    """The running local platform, or one line saying why there is none, and exit 1."""
    try:
        return PlatformInfo.running(find_data_dir(data_dir))
    except PlatformNotRunning as error:
        err.print(f"[red]{escape(str(error))}[/]")
        raise typer.Exit(1) from None


def _running_or_none(data_dir: Path | None) -> PlatformInfo | None:
    try:
        return PlatformInfo.running(find_data_dir(data_dir))
    except PlatformNotRunning:
        return None


def _operator_scope(workspace: str) -> AccessScope:
    """The operator's view of one workspace."""
    return operator_scope(checked_workspace(workspace))


_Request = TypeVar("_Request", bound=BaseModel)


def _request(model: type[_Request], **fields: object) -> _Request:
    """A request as the API would validate it; a bad one exits 2 naming the field, no traceback."""
    try:
        return model.model_validate(fields)
    except ValidationError as error:
        for item in error.errors():
            field = ".".join(str(part) for part in item["loc"])
            err.print(f"[red]{escape(field)}: {escape(item['msg'])}[/]")
        raise typer.Exit(2) from None


def _settings(**overrides: object) -> Settings:
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as error:
        err.print(f"[red]{error}[/]")
        raise typer.Exit(2) from None


@app.command()
def dev(
    data_dir: DataDir = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="RAG_API_PORT", help="API and web page port.")] = 8000,
    aws_port: Annotated[int, typer.Option(envvar="RAG_AWS_PORT", help="Local S3/SQS (moto) port.")] = 4566,
    seed: Annotated[bool, typer.Option(help="Sync the bundled sample corpus on start.")] = True,
) -> None:
    """Start the local platform: S3/SQS, the ingestion worker, the API and the web page."""
    from pipelines.dev import run

    run(find_data_dir(data_dir), host, port, aws_port, seed)


@app.command()
def worker(data_dir: DataDir = None) -> None:
    """Run another local ingester on the running platform's queue (or on INGEST_QUEUE_URL)."""
    from pipelines.worker import main

    main(data_dir)


def _collect_files(paths: list[Path]) -> list[Path]:
    """The files named, and the supported files under the folders named."""
    from service.ingest.parse import CONTENT_TYPES

    files: list[Path] = []
    for path in paths:
        if not path.exists():
            err.print(f"[red]{escape(str(path))}: no such file or directory[/]")
            raise typer.Exit(2)
        files.extend(
            sorted(p for p in path.rglob("*") if p.suffix.lower() in CONTENT_TYPES)
            if path.is_dir()
            else [path]
        )
    return files


@app.command()
def ingest(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Files or folders to upload; or s3://bucket/prefix to backfill.", metavar="PATHS"
        ),
    ],
    *,
    data_dir: DataDir = None,
    prefix: Annotated[str, typer.Option(help="Key prefix in the bucket (part of each document id).")] = "",
    wait: Annotated[
        bool, typer.Option(help="Follow the ledger until every document is indexed or failed.")
    ] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait.")] = 600,
    workspace: Workspace = DEFAULT_WORKSPACE,
) -> None:
    """Upload documents to the running local platform's bucket and follow each one's ingestion.

    A document's id is its object key: the workspace's folder (`workspaces/<id>/`, none for
    `default`), the prefix, then its path relative to the current folder (files outside it:
    relative to the folder they share).
    """
    from pipelines.backfill import backfill_platform
    from pipelines.dev import KeyCollision, follow, upload
    from service.workspaces import workspace_prefix

    scope = _operator_scope(workspace)
    info = _running(data_dir)
    since = time.time() - 1
    # `s3://bucket/prefix` backfills through direct-enqueue messages (the shell may pass `s3:/`).
    backfilled = backfill_platform(info, [str(p) for p in paths if str(p).startswith("s3:/")])
    files = _collect_files([p for p in paths if not str(p).startswith("s3:/")])
    try:
        uploaded = upload(info, files, root=Path.cwd(), prefix=workspace_prefix(scope.workspace) + prefix)
    except KeyCollision as error:
        err.print(f"[red]{escape(str(error))}: rename one, or upload them with different --prefix[/]")
        raise typer.Exit(2) from None
    keys = _print_uploaded(uploaded.changed, uploaded.unchanged, info.document_bucket) + backfilled
    if backfilled:
        console.print(f"enqueued {len(backfilled)} document(s) from S3 for backfill")
    if wait:
        result = follow(info, keys, since, timeout)
        failed = sorted(k for k, s in result.done.items() if s == "failed")
        for key in failed:
            err.print(f"[red]failed:[/] {escape(key)}")
        if result.stuck:
            err.print(f"[yellow]{len(result.stuck)} document(s) not done after {timeout:.0f} s:[/]")
            for key, state in result.stuck.items():
                err.print(f"  {escape(key)}: {escape(state)}")
        if failed or result.stuck:
            raise typer.Exit(1)


def _print_uploaded(changed: list[str], unchanged: list[str], bucket: str) -> list[str]:
    """Name every document id; return the ones to follow."""
    console.print(f"uploaded {len(changed)} document(s) to s3://{bucket}:")
    for key in changed:
        console.print(f"  {escape(key)}", highlight=False)
    if unchanged:
        console.print(f"{len(unchanged)} already indexed with the same content, not uploaded again:")
        for key in unchanged:
            console.print(f"  {escape(key)}", highlight=False)
    return list(changed)


def _print_hits(hits: list[dict[str, object]]) -> None:
    from pipelines.terminal import snippet_text

    if not hits:
        console.print("no passage matches")
        return
    table = Table("#", "score", "document", "snippet")
    for number, hit in enumerate(hits, 1):
        table.add_row(
            str(number),
            f"{hit['score']:.3f}",
            escape(str(hit["document_id"])),
            snippet_text(str(hit["snippet"]), 160),
        )
    console.print(table)


def _api_post(info: PlatformInfo, path: str, body: dict[str, object]) -> dict[str, object]:
    """Call the running API: it has the embedding model loaded, so there is no model load per call."""
    import httpx

    from service.contract import API_KEY_HEADER

    try:
        response = httpx.post(
            f"{info.api_url}{path}", json=body, headers={API_KEY_HEADER: info.api_key}, timeout=60
        )
    except httpx.HTTPError as error:
        err.print(f"[red]the API at {info.api_url} did not answer: {escape(str(error))}[/]")
        raise typer.Exit(1) from None
    if response.status_code != 200:
        err.print(f"[red]{path} failed: HTTP {response.status_code}: {escape(response.text[:300])}[/]")
        raise typer.Exit(1)
    result: dict[str, object] = response.json()
    return result


def _search_via_api(
    info: PlatformInfo, text: str, top_k: int, mode: SearchMode | None, workspace: str
) -> dict[str, object]:
    body: dict[str, object] = {"query": text, "top_k": top_k, "workspace": workspace}
    if mode is not None:
        body["mode"] = mode.value
    return _api_post(info, "/v1/search", body)


@app.command()
def search(
    text: str,
    top_k: Annotated[int, typer.Option("--top-k", "-k")] = 5,
    mode: Annotated[SearchMode | None, typer.Option(help="bm25, vector or hybrid.")] = None,
    *,
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    workspace: Workspace = DEFAULT_WORKSPACE,
) -> None:
    """Search the index: through the running platform's API, else in-process."""
    from service.models import SearchRequest

    scope = _operator_scope(workspace)
    request = _request(SearchRequest, query=text, top_k=top_k, mode=mode, workspace=scope.workspace)
    info = _running_or_none(data_dir)
    if info is not None:
        result = _search_via_api(info, request.query, request.top_k, request.mode, scope.workspace)
    else:
        from service.wiring import Container

        container = Container(_settings(data_dir=find_data_dir(data_dir)))
        retrieval = container.retriever.search(request.query, request.top_k, request.mode, scope=scope)
        result = {
            "mode": retrieval.mode,
            "hits": [h.model_dump(mode="json") for h in retrieval.hits],
            "timings_ms": retrieval.timings_ms,
        }
    if as_json:
        print(json.dumps(result))
    else:
        hits = result["hits"]
        assert isinstance(hits, list)
        _print_hits(hits)


@app.command()
def query(
    text: str,
    top_k: Annotated[int, typer.Option("--top-k", "-k")] = 5,
    mode: Annotated[SearchMode | None, typer.Option(help="bm25, vector or hybrid.")] = None,
    *,
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    workspace: Workspace = DEFAULT_WORKSPACE,
) -> None:
    """Answer a question with citations: through the running platform's API, else in-process."""
    from service.models import QueryRequest, QueryResponse

    scope = _operator_scope(workspace)
    request = _request(QueryRequest, question=text, top_k=top_k, mode=mode, workspace=scope.workspace)
    info = _running_or_none(data_dir)
    if info is not None:
        body = _api_post(info, "/v1/query", request.model_dump(mode="json", exclude_none=True))
        response = QueryResponse.model_validate(body)
    else:
        from service.wiring import Container

        container = Container(_settings(data_dir=find_data_dir(data_dir)))
        response = container.query_service.answer(request, scope)
    if as_json:
        print(response.model_dump_json())
        return
    console.print(escape(response.answer))
    for citation in response.citations:
        console.print(f"  \\[{citation.number}] {escape(citation.title)} — {escape(citation.source)}")
    console.print(f"[dim]{response.mode}, {response.search_mode}, {response.timings_ms.get('total')} ms[/]")


@app.command(name="eval")
def eval_(
    dataset: Annotated[
        list[Path] | None,
        typer.Option(help="A BEIR-layout directory (repeatable).", exists=True, file_okay=False),
    ] = None,
    *,
    answers: Annotated[
        bool, typer.Option("--answers", help="Score answers' citations on the golden answer set.")
    ] = False,
    golden_answers: Annotated[
        Path | None, typer.Option(help="Golden answer set; pipelines/golden/answers.json by default.")
    ] = None,
    mode: Annotated[
        list[SearchMode] | None, typer.Option(help="Modes to run (repeatable); all by default.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly one JSON object on stdout.")] = False,
    cache: Annotated[
        bool, typer.Option(help="Reuse embeddings from <data-dir>/cache/embeddings.sqlite.")
    ] = True,
    report: Annotated[
        Path | None, typer.Option(help="Write a report with a bar chart per dataset (.html or .md).")
    ] = None,
    fusion: Annotated[
        str | None, typer.Option(help="Hybrid fusion: zscore (default), convex (min-max) or rrf.")
    ] = None,
    data_dir: DataDir = None,
    workspace: Workspace = DEFAULT_WORKSPACE,
) -> None:
    """Evaluate retrieval on BEIR collections, each in an isolated temporary index; --answers
    scores the extractive answerer and the configured generator on the golden answer set.
    --workspace indexes into that workspace and scopes every query to it, as the API does."""
    from pipelines.evaluate import evaluate
    from service.embed.cache import DEFAULT_FILE, CachingEmbedder
    from service.ingest.chunking import Chunker
    from service.search.fusion import DEFAULT, Fusion
    from service.wiring import build_embedder

    scope = _operator_scope(workspace)
    settings = _settings(data_dir=find_data_dir(data_dir))
    modes = mode or list(SearchMode)
    try:
        method = Fusion(fusion) if fusion else DEFAULT
    except ValueError:
        err.print(f"[red]--fusion must be one of {', '.join(Fusion)}[/]")
        raise typer.Exit(2) from None
    embedder: Embedder = build_embedder(settings)
    if cache:
        embedder = CachingEmbedder(embedder, settings.data_dir / "cache" / DEFAULT_FILE)
    chunker = Chunker(settings.chunk_size, settings.chunk_overlap)
    if answers:
        _eval_answers(
            settings, embedder, chunker, golden_answers, scope.workspace, as_json=as_json and not dataset
        )
    if not dataset:
        if not answers:
            err.print("[red]give --dataset DIR (repeatable) or --answers[/]")
            raise typer.Exit(2)
        return
    results = [
        evaluate(
            path,
            modes,
            embedder,
            chunker,
            alpha=settings.hybrid_alpha,
            fusion=method,
            candidates=settings.hybrid_candidates,
            workspace=scope.workspace,
        )
        for path in dataset
    ]
    if report is not None:
        from pipelines.report import write_report

        written = write_report(report, results)
        err.print(f"report: {', '.join(str(p) for p in written)}")
    if as_json:
        print(json.dumps(_eval_json(results, modes)))
        return
    for result in results:
        table = Table("mode", *next(iter(result["modes"].values())).keys())  # type: ignore[attr-defined]
        for name, metrics in result["modes"].items():  # type: ignore[attr-defined]
            table.add_row(name, *(f"{v:.4f}" for v in metrics.values()))
        console.print(
            f"{result['dataset']}: {result['documents']} documents, {result['chunks']} chunks, "
            f"{result['queries']} queries, workspace {result['workspace']}"
        )
        console.print(table)


def _eval_answers(
    settings: Settings,
    embedder: Embedder,
    chunker: Chunker,
    golden: Path | None,
    workspace: str,
    *,
    as_json: bool,
) -> None:
    from pipelines.evaluate_answers import DEFAULT_GOLDEN, evaluate_answers, load_answers
    from service.generate.extractive import ExtractiveGenerator
    from service.generate.protocol import AnswerGenerator
    from service.wiring import build_generator

    generators: list[AnswerGenerator] = [ExtractiveGenerator()]
    configured = build_generator(settings)
    if configured.name != generators[0].name:
        generators.append(configured)
    result = evaluate_answers(
        load_answers(golden or DEFAULT_GOLDEN),
        generators,
        embedder,
        chunker,
        alpha=settings.hybrid_alpha,
        candidates=settings.hybrid_candidates,
        workspace=workspace,
    )
    if as_json:
        print(json.dumps(result))
        return
    table = Table("generator", "citation precision", "citation recall", "coverage")
    for name, figures in result["generators"].items():  # type: ignore[attr-defined]
        table.add_row(
            name, *(f"{figures[k]:.3f}" for k in ("citation_precision", "citation_recall", "coverage"))
        )
    console.print(
        f"golden answers: {result['golden']} questions, top {result['top_k']} passages, "
        f"workspace {result['workspace']}"
    )
    console.print(table)


def _eval_json(results: list[dict[str, object]], modes: list[SearchMode]) -> object:
    """One dataset: its object (flattened for one mode); several: {"results": [...]}."""
    shaped = []
    for result in results:
        per_mode = result["modes"]
        assert isinstance(per_mode, dict)
        if len(modes) == 1:
            rest = {k: v for k, v in result.items() if k != "modes"}
            shaped.append({**rest, "mode": modes[0].value, **per_mode[modes[0].value]})
        else:
            shaped.append(result)
    return shaped[0] if len(shaped) == 1 else {"results": shaped}


@app.command()
def reindex(
    rollback: Annotated[bool, typer.Option("--rollback", help="Point the read alias back.")] = False,
    allow_shrink: Annotated[
        bool,
        typer.Option(
            "--allow-shrink",
            help="Switch even if the new index holds fewer documents than the ledger has indexed.",
        ),
    ] = False,
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Build a new versioned index from the source documents, verify it, switch the read alias."""
    from pipelines.reindex import command

    command(rollback, data_dir, as_json, allow_shrink=allow_shrink)


@app.command()
def reconcile(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report the drift; change nothing.")] = False,
    stuck_after: Annotated[
        float, typer.Option(help="Seconds a document may stay queued (no live lease) before it is requeued.")
    ] = 900,
    prefix: Annotated[str, typer.Option(help="Only objects under this key prefix.")] = "",
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Report and repair drift between the bucket, the ledger and the index (local or a cloud stack)."""
    from pipelines.reconcile import command

    code = command(data_dir, dry_run=dry_run, stuck_after=stuck_after, prefix=prefix, as_json=as_json)
    raise typer.Exit(code)


def main() -> None:  # pragma: no cover - console-script shim
    sys.exit(app())


if __name__ == "__main__":  # pragma: no cover
    app()
