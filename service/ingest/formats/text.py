"""Plain-text families: prose (.txt), markdown, source code and configuration files."""

from __future__ import annotations

import posixpath
import re

from service.ingest.errors import PermanentIngestError

_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.DOTALL)


def decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise PermanentIngestError(
            f"{name}: not valid UTF-8 text ({error.reason} at byte {error.start})"
        ) from None


def stem_title(name: str) -> str:
    stem = posixpath.splitext(posixpath.basename(name))[0]
    return stem.replace("-", " ").replace("_", " ").strip() or name


def parse_text(data: bytes, name: str) -> tuple[str, str]:
    text = decode(data, name)
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return (first[:200] if 0 < len(first) <= 200 else stem_title(name)), text


def parse_markdown(data: bytes, name: str) -> tuple[str, str]:
    text = _FRONT_MATTER.sub("", decode(data, name), count=1)
    heading = _HEADING.search(text)
    return (heading.group(1) if heading else stem_title(name)), text


def parse_code(data: bytes, name: str) -> tuple[str, str]:
    """Source and config files are indexed verbatim under their path, which is what people
    search for ("where is the retry budget set?"); the first line of code is rarely a title."""
    return posixpath.basename(name) or name, decode(data, name)
