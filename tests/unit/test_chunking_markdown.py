"""Markdown chunks stand on their own: each carries its heading path, and a fenced block the
size limit cuts is reopened and closed in every chunk that holds part of it."""

from __future__ import annotations

import re

import pytest
from semantic_text_splitter import TextSplitter

from service.ingest.chunking import Chunker
from tests.factories import make_document

COMMANDS = [f"tool task-{n} --flag value-{n}    # does the step number {n} of the job" for n in range(40)]
PAGE = (
    "# Operating the tool\n\nThe tool has many commands.\n\n"
    "## Everyday commands\n\n### From the shell\n\nRun them from the project folder:\n\n"
    "```bash\n" + "\n".join(COMMANDS) + "\n```\n\nThat is all there is to it.\n\n"
    "## Another section\n\nProse about something else entirely, long enough to stand alone.\n"
)


def markdown(text: str) -> list[str]:
    document = make_document(text=text, content_type="text/markdown", title="Operating the tool")
    return [chunk.text for chunk in Chunker(size=400, overlap=60).split(document)]


def test_every_chunk_of_a_cut_command_block_has_its_heading_path_and_its_fences() -> None:
    # Given a section whose command block is far longer than a chunk
    # When the page is chunked
    chunks = markdown(PAGE)
    # Then every command is in some chunk, and every chunk holding one starts under the
    # section's heading path and holds it inside a fenced bash block
    holding = [c for c in chunks if "tool task-" in c]
    assert all(any(command in c for c in holding) for command in COMMANDS)
    assert len(holding) > 3
    for chunk in holding:
        assert chunk.startswith("## Everyday commands\n\n### From the shell\n\n"), chunk
        opened = chunk.index("```bash\n")
        assert chunk.index("tool task-") > opened, chunk
        assert chunk.count("```") % 2 == 0, chunk


def test_no_chunk_is_only_headings_or_fence_lines() -> None:
    # Given the page
    # When it is chunked
    chunks = markdown(PAGE)
    # Then each chunk has content besides headings and fences (the next chunk carries them)
    structure = re.compile(r"^\s*(#{1,6}\s.*|#{1,6}|`{3,}.*|~{3,}.*)?$")
    assert all(not all(structure.match(line) for line in c.splitlines()) for c in chunks), chunks


def test_the_title_heading_is_not_repeated_and_a_new_section_replaces_the_path() -> None:
    # Given the page with a long last section
    text = PAGE + "".join(f"Another sentence {n} about something else entirely. " for n in range(40))
    # When it is chunked
    chunks = markdown(text)
    # Then only the first chunk names the title, and the last section's chunks are under its
    # own heading only, not under the previous section's subheading
    assert [c for c in chunks if "# Operating the tool" in c] == [chunks[0]]
    tail = [c for c in chunks if "Another sentence" in c and "That is all" not in c]
    assert len(tail) > 2
    assert all(c.startswith("## Another section\n\n") and "From the shell" not in c for c in tail), tail


@pytest.mark.parametrize("size", [120, 200, 400, 1000])
def test_decorated_markdown_chunks_still_fit_the_size(size: int) -> None:
    # Given the page with a deep heading path
    text = PAGE.replace("### From the shell", "### From the shell, " + "deeply nested " * 12)
    document = make_document(text=text, content_type="text/markdown")
    # When it is chunked at several sizes
    chunks = Chunker(size=size, overlap=size // 8).split(document)
    # Then no chunk is longer than the size, and splitting again gives the same chunks (ids)
    assert chunks
    assert all(len(c.text) <= size for c in chunks)
    assert chunks == Chunker(size=size, overlap=size // 8).split(document)


def test_a_chunk_that_starts_on_a_closing_fence_does_not_reopen_an_empty_block() -> None:
    # Given a block that ends just where a chunk boundary falls
    text = "## Run\n\n```sh\n" + "\n".join(COMMANDS[:9]) + "\n```\n\n" + "Afterwards, read the log. " * 12
    # When it is chunked
    chunks = markdown(text)
    # Then no chunk holds an empty fenced block
    assert not any(re.search(r"```sh\n```", c) for c in chunks), chunks


def test_plain_text_is_split_as_before() -> None:
    # Given a plain-text document (the retrieval benchmarks' kind)
    text = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(200))
    document = make_document(text=text)
    # When it is chunked
    chunks = Chunker(size=300, overlap=50).split(document)
    # Then the chunks are the splitter's, undecorated
    assert [c.text for c in chunks] == TextSplitter(300, overlap=50, trim=True).chunks(text)


def test_a_block_fenced_with_more_backticks_is_reopened_and_closed_with_as_many() -> None:
    # Given a block fenced with four backticks that shows a three-backtick example, cut by the size
    inner = "\n".join(["```bash", *COMMANDS[:20], "```"])
    text = "## Writing docs\n\nShow a block inside a block:\n\n````markdown\n" + inner + "\n````\n\nDone."
    # When it is chunked
    chunks = markdown(text)
    # Then each chunk holding example commands opens and closes the outer fence, not the inner one
    holding = [c for c in chunks if "tool task-" in c]
    assert len(holding) > 1
    for chunk in holding:
        assert "````markdown\n" in chunk, chunk
        assert chunk.count("````") == 2, chunk
