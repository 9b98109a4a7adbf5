"""Terminal rendering of API text: highlighted snippets as highlights, not as raw `<mark>` tags."""

from __future__ import annotations

import html
import re

from rich.text import Text

_MARK = re.compile(r"(<mark>.*?</mark>)", re.DOTALL)
HIGHLIGHT_STYLE = "bold black on yellow"


def snippet_text(snippet: str, limit: int | None = None) -> Text:
    """A snippet (HTML-escaped, terms in `<mark>`) as rich `Text`: entities unescaped, marks styled.

    Cut at `limit` visible characters, so a cut can never fall inside a tag.
    """
    text = Text()
    for part in _MARK.split(snippet):
        if part.startswith("<mark>") and part.endswith("</mark>"):
            text.append(html.unescape(part[6:-7]), style=HIGHLIGHT_STYLE)
        elif part:
            text.append(html.unescape(part.replace("<mark>", "").replace("</mark>", "")))
    if limit is not None and len(text) > limit:
        text.truncate(limit - 1)
        text.append("…")
    return text
