"""Markdown shown as plain text: answers and citation snippets are read, not rendered.

Only the markup the platform's documents use is removed (CommonMark's ATX headings, emphasis,
code spans and fences, links, block quotes, list bullets, table pipes:
https://spec.commonmark.org/0.31.2/).
Underscores inside words stay: `MAX_BODY_BYTES` is a name, not emphasis. A snippet's `<mark>`
tags and HTML escapes pass through untouched.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"^\s*(```|~~~)[\w+-]*\s*$", re.MULTILINE)
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+", re.MULTILINE)
_QUOTE = re.compile(r"^\s{0,3}(>|&gt;)\s?", re.MULTILINE)
_BULLET = re.compile(r"^\s{0,3}[-*+]\s+", re.MULTILINE)
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_EMPHASIS = re.compile(r"(?<![\w*])\*(?=\S)([^*]+?)(?<=\S)\*(?![\w*])|(?<!\w)_(?=\S)([^_]+?)(?<=\S)_(?!\w)")
_CODE = re.compile(r"`+")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$", re.MULTILINE)
_PIPES = re.compile(r"\s*\|\s*")
_SPACES = re.compile(r"[ \t]+")


def plain(markdown: str) -> str:
    """The text of `markdown` without its markup, whitespace runs collapsed per line."""
    text = _FENCE.sub("", markdown)
    text = _TABLE_RULE.sub("", text)
    text = _HEADING.sub("", text)
    text = _QUOTE.sub("", text)
    text = _BULLET.sub("", text)
    text = _LINK.sub(r"\1", text)
    text = _STRONG.sub(r"\2", text)
    text = _EMPHASIS.sub(lambda m: m.group(1) or m.group(2), text)
    text = _CODE.sub("", text)
    lines = []
    for line in text.splitlines():
        row = _PIPES.sub("  ", line).strip() if line.strip().startswith("|") else line
        lines.append(_SPACES.sub(" ", row).strip())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def one_line(markdown: str) -> str:
    """`plain`, then every line break as a space: for a quoted sentence or a snippet."""
    return _SPACES.sub(" ", plain(markdown).replace("\n", " ")).strip()
