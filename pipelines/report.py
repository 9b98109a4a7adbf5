"""The `ragctl eval --report PATH` report: a table and a bar chart of the metrics per mode.

No plotting dependency: the chart is a hand-written SVG. `PATH` ending in `.html`
gives one self-contained page with the SVG inline; any other suffix (`.md`)
gives Markdown plus one `<stem>-<dataset>.svg` per dataset beside it, linked as
images, because Markdown renderers such as GitHub strip inline SVG.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
COLOURS = {"bm25": "#4e79a7", "vector": "#f28e2b", "hybrid": "#59a14f"}
_FALLBACK_COLOURS = ("#e15759", "#76b7b2", "#edc948", "#b07aa1")

_WIDTH, _HEIGHT = 640, 300
_LEFT, _RIGHT, _TOP, _BOTTOM = 44, 110, 16, 36

Result = Mapping[str, Any]


def _colour(mode: str, index: int) -> str:
    return COLOURS.get(mode, _FALLBACK_COLOURS[index % len(_FALLBACK_COLOURS)])


def _metrics(result: Result) -> list[str]:
    modes: Mapping[str, Mapping[str, float]] = result["modes"]
    present = {name for values in modes.values() for name in values}
    return [m for m in METRICS if m in present] + sorted(present - set(METRICS))


def bar_chart(result: Result) -> str:
    """An SVG grouped bar chart: one group per metric, one bar per mode, values on a 0-1 axis."""
    modes: Mapping[str, Mapping[str, float]] = result["modes"]
    metrics = _metrics(result)
    plot_w, plot_h = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM
    group_w = plot_w / max(len(metrics), 1)
    bar_w = group_w * 0.8 / max(len(modes), 1)
    title = html.escape(f"{result.get('dataset', '')}: metrics per mode")
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}" '
        f'viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img" font-family="sans-serif" font-size="11">',
        f"<title>{title}</title>",
        f'<rect width="{_WIDTH}" height="{_HEIGHT}" fill="white"/>',
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = _TOP + plot_h * (1 - tick)
        parts.append(f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_LEFT + plot_w}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:.2f}</text>')
    for g, metric in enumerate(metrics):
        x0 = _LEFT + g * group_w + group_w * 0.1
        for b, (mode, values) in enumerate(modes.items()):
            value = min(max(float(values.get(metric, 0.0)), 0.0), 1.0)
            x, h = x0 + b * bar_w, plot_h * value
            parts.append(
                f'<rect x="{x:.1f}" y="{_TOP + plot_h - h:.1f}" width="{bar_w * 0.92:.1f}" height="{h:.1f}" '
                f'fill="{_colour(mode, b)}"><title>{html.escape(mode)} {html.escape(metric)} '
                f"{value:.4f}</title></rect>"
            )
            parts.append(
                f'<text x="{x + bar_w * 0.46:.1f}" y="{_TOP + plot_h - h - 3:.1f}" text-anchor="middle" '
                f'font-size="9">{value:.3f}</text>'
            )
        label_x = _LEFT + g * group_w + group_w / 2
        parts.append(
            f'<text x="{label_x:.1f}" y="{_HEIGHT - _BOTTOM + 16}" text-anchor="middle">'
            f"{html.escape(metric)}</text>"
        )
    for b, mode in enumerate(modes):
        y = _TOP + 10 + b * 18
        parts.append(
            f'<rect x="{_WIDTH - _RIGHT + 14}" y="{y - 9}" width="12" height="12" fill="{_colour(mode, b)}"/>'
        )
        parts.append(f'<text x="{_WIDTH - _RIGHT + 32}" y="{y + 1}">{html.escape(mode)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _settings_line(result: Result) -> str:
    fields = ("documents", "chunks", "queries", "embedder", "chunk_size", "chunk_overlap", "fusion", "alpha")
    return ", ".join(f"{name} {result[name]}" for name in fields if name in result)


def _markdown_table(result: Result) -> list[str]:
    metrics = _metrics(result)
    latency: Mapping[str, float] = result.get("query_ms_p50", {})
    header = ["mode", *metrics] + (["query ms (p50)"] if latency else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for mode, values in result["modes"].items():
        cells = [mode, *(f"{float(values.get(m, 0.0)):.4f}" for m in metrics)]
        if latency:
            cells.append(f"{latency.get(mode, 0.0):.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_markdown(results: Sequence[Result], chart_names: Sequence[str]) -> str:
    lines = ["# Retrieval evaluation", ""]
    for result, chart in zip(results, chart_names, strict=True):
        lines += [f"## {result['dataset']}", "", _settings_line(result), "", *_markdown_table(result), ""]
        lines += [f"![{result['dataset']}: metrics per mode]({chart})", ""]
    return "\n".join(lines)


def render_html(results: Sequence[Result]) -> str:
    body = []
    for result in results:
        rows = "".join(
            "<tr><td>{}</td>{}</tr>".format(
                html.escape(mode),
                "".join(f"<td>{float(values.get(m, 0.0)):.4f}</td>" for m in _metrics(result)),
            )
            for mode, values in result["modes"].items()
        )
        head = "".join(f"<th>{html.escape(m)}</th>" for m in _metrics(result))
        body.append(
            f"<h2>{html.escape(str(result['dataset']))}</h2><p>{html.escape(_settings_line(result))}</p>"
            f"<table><tr><th>mode</th>{head}</tr>{rows}</table>{bar_chart(result)}"
        )
    style = (
        "body{font-family:sans-serif;max-width:760px;margin:2em auto}td,th{padding:2px 10px;text-align:right}"
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>Retrieval evaluation</title>'
        f"<style>{style}</style></head><body><h1>Retrieval evaluation</h1>{''.join(body)}</body></html>\n"
    )


def write_report(path: Path, results: Sequence[Result]) -> list[Path]:
    """Write the report (and, for Markdown, its SVG charts); return every file written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".html", ".htm"):
        path.write_text(render_html(results), encoding="utf-8")
        return [path]
    charts = [path.with_name(f"{path.stem}-{result['dataset']}.svg") for result in results]
    for chart, result in zip(charts, results, strict=True):
        chart.write_text(bar_chart(result) + "\n", encoding="utf-8")
    path.write_text(render_markdown(results, [c.name for c in charts]), encoding="utf-8")
    return [path, *charts]
