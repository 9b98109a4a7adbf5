"""Tables and records: CSV/TSV with the standard library's `csv`, JSON with `json`.

Rows become lines of `column: value` pairs, so a passage keeps its column names and
BM25 and the embedder see what each value means.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from service.ingest.errors import PermanentIngestError
from service.ingest.formats.text import decode, stem_title

# Lists and objects nested deeper than this are summarised rather than walked: a hostile JSON
# document of nested brackets would otherwise exhaust the stack.
_MAX_JSON_DEPTH = 32


def rows_as_text(header: list[str], rows: Iterator[list[str]]) -> str:
    lines = []
    for row in rows:
        cells = [
            f"{header[i] if i < len(header) and header[i] else f'column {i + 1}'}: {cell.strip()}"
            for i, cell in enumerate(row)
            if cell and cell.strip()
        ]
        if cells:
            lines.append("; ".join(cells))
    return "\n".join(lines)


def parse_csv(data: bytes, name: str) -> tuple[str, str]:
    text = decode(data, name)
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel_tab if name.lower().endswith(".tsv") else csv.excel
    try:
        reader = csv.reader(io.StringIO(text), dialect)
        header = [cell.strip() for cell in next(reader, [])]
        return stem_title(name), rows_as_text(header, reader)
    except csv.Error as error:
        raise PermanentIngestError(f"{name}: malformed CSV ({error})") from None


def _walk(value: Any, path: str, depth: int) -> Iterator[str]:
    if depth > _MAX_JSON_DEPTH:
        raise PermanentIngestError(f"nested deeper than {_MAX_JSON_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}" if path else str(key), depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]", depth + 1)
    elif value is not None and str(value).strip():
        yield f"{path or 'value'}: {value}"


def parse_json(data: bytes, name: str) -> tuple[str, str]:
    text = decode(data, name)
    try:
        payload = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        raise PermanentIngestError(f"{name}: not valid JSON ({error})") from None
    title = payload.get("title") if isinstance(payload, dict) else None
    try:
        lines = list(_walk(payload, "", 0))
    except PermanentIngestError as error:
        raise PermanentIngestError(f"{name}: {error.reason}") from None
    return (title.strip() if isinstance(title, str) and title.strip() else stem_title(name)), "\n".join(lines)
