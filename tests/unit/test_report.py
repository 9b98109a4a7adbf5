"""`ragctl eval --report`: Markdown or HTML with an SVG bar chart per dataset."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from pipelines.report import bar_chart, write_report

RESULT = {
    "dataset": "tiny",
    "documents": 3,
    "chunks": 3,
    "queries": 2,
    "fusion": "convex",
    "alpha": 0.5,
    "query_ms_p50": {"bm25": 1.0, "vector": 2.0, "hybrid": 3.0},
    "modes": {
        "bm25": {"ndcg@10": 0.5, "recall@10": 0.4, "recall@100": 0.8, "mrr@10": 0.6},
        "vector": {"ndcg@10": 0.45, "recall@10": 0.42, "recall@100": 0.79, "mrr@10": 0.55},
        "hybrid": {"ndcg@10": 0.56, "recall@10": 0.48, "recall@100": 0.85, "mrr@10": 0.66},
    },
}


def test_chart_is_valid_svg_with_one_bar_per_mode_and_metric() -> None:
    # Given a result of three modes and four metrics, when charted
    svg = ET.fromstring(bar_chart(RESULT))
    # Then it parses as SVG and holds 12 bars plus the background and 3 legend keys
    rects = svg.findall("{http://www.w3.org/2000/svg}rect")
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    assert len(rects) == 1 + 12 + 3
    assert "0.560" in bar_chart(RESULT)


def test_markdown_report_links_a_chart_file(tmp_path: Path) -> None:
    # When a Markdown report is written
    written = write_report(tmp_path / "out" / "eval.md", [RESULT])
    # Then the table holds every mode and the chart sits beside it
    text = (tmp_path / "out" / "eval.md").read_text()
    assert [p.name for p in written] == ["eval.md", "eval-tiny.svg"]
    assert "| hybrid | 0.5600 | 0.4800 | 0.8500 | 0.6600 | 3.0 |" in text
    assert "![tiny: metrics per mode](eval-tiny.svg)" in text
    ET.parse(tmp_path / "out" / "eval-tiny.svg")


def test_html_report_is_self_contained(tmp_path: Path) -> None:
    # When an HTML report is written for two datasets
    other = {**RESULT, "dataset": "other<&>"}
    written = write_report(tmp_path / "eval.html", [RESULT, other])
    # Then it is one file with both charts inline and names escaped
    html = written[0].read_text()
    assert written == [tmp_path / "eval.html"]
    assert html.count("<svg") == 2
    assert "other&lt;&amp;&gt;" in html
