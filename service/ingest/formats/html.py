"""HTML with BeautifulSoup (the standard library parser: no lxml needed)."""

from __future__ import annotations

import re

from service.ingest.formats.text import decode, stem_title


def parse_html(data: bytes, name: str) -> tuple[str, str]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(decode(data, name), "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    title = soup.title.get_text(strip=True) if soup.title else ""
    if not title and (h1 := soup.find("h1")):
        title = h1.get_text(strip=True)
    body = soup.body or soup
    text = re.sub(r"\n{3,}", "\n\n", body.get_text("\n", strip=True))
    return title or stem_title(name), text
