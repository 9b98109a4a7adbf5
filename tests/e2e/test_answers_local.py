"""Issue 14 item 3 as a user tries it: the local platform answers a forker's question from its own
docs, citing the page that has the command, in plain text, with contiguous per-document
citations and no dangling fragment; a follow-up keeps all of that."""

from __future__ import annotations

import re

import httpx
import pytest

from pipelines.platform_file import PlatformInfo
from service.contract import API_KEY_HEADER
from service.query.citations import cited_numbers

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

QUESTION = "How do I deploy to production?"
# Markdown that must not reach a reader: fences, code spans, strong emphasis, headings, bullets.
_MARKUP = re.compile(r"```|`|\*\*|^#{1,6}\s|^[-*+]\s", re.MULTILINE)


def _ask(info: PlatformInfo, body: dict[str, object]) -> dict[str, object]:
    response = httpx.post(
        f"{info.api_url}/v1/query", json=body, headers={API_KEY_HEADER: info.api_key}, timeout=60
    )
    assert response.status_code == 200, response.text
    reply: dict[str, object] = response.json()
    return reply


def _assert_readable(reply: dict[str, object]) -> list[str]:
    """Citations 1..n, one per document, each used in the answer; no markup; no fragment."""
    answer = str(reply["answer"])
    citations = reply["citations"]
    assert isinstance(citations, list)
    numbers = [c["number"] for c in citations]
    documents = [c["document_id"] for c in citations]
    assert numbers == list(range(1, len(numbers) + 1)), reply
    assert len(set(documents)) == len(documents), reply
    assert sorted(cited_numbers(answer)) == numbers, reply
    assert not _MARKUP.search(answer), answer
    for citation in citations:
        assert not _MARKUP.search(citation["snippet"]), citation
    # A sentence that promised a block or list it does not carry ("...contains: [3]").
    assert not re.search(r":\s*\[\d+\]", answer), answer
    return documents


def test_deploying_to_production_cites_the_deploy_guide_with_its_command(
    local_platform: PlatformInfo,
) -> None:
    # Given the local platform with its bundled docs indexed
    # When a forker asks how to deploy to production
    reply = _ask(local_platform, {"question": QUESTION})
    # Then the answer quotes the deploy command and cites the deploy guide, readably
    documents = _assert_readable(reply)
    assert "docs/deploying.md" in documents, reply
    assert "pulumi up" in str(reply["answer"]), reply


def test_a_follow_up_question_is_answered_as_readably(local_platform: PlatformInfo) -> None:
    # Given a first answer about production
    first = _ask(local_platform, {"question": QUESTION})
    history = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": first["answer"]}]
    # When the follow-up asks about staging
    reply = _ask(local_platform, {"question": "and for staging?", "history": history})
    # Then it is answered, with the same guarantees
    assert reply["citations"], reply
    _assert_readable(reply)


def test_a_command_from_a_long_operator_menu_is_quoted_with_its_page(local_platform: PlatformInfo) -> None:
    # Given the local platform with its bundled docs indexed (the operations page's command block
    # is longer than a chunk, so chunking cuts it)
    # When a forker asks how to list the documents that failed
    reply = _ask(local_platform, {"question": "How do I list the documents that failed to ingest?"})
    # Then the answer quotes the listing command, citing the operations page, readably
    documents = _assert_readable(reply)
    assert "docs/operations.md" in documents, reply
    assert "ragctl docs list" in str(reply["answer"]), reply
