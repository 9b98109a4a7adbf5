"""The local default: quote the best sentences of the best passages, with their [n] citations.

No model, no network: it scores each sentence of the retrieved passages by the
query words it contains (stemmed), in the sentence and in its section heading, and
quotes the best few in passage order of relevance. The response says `mode: extractive`
so nobody mistakes it for a generated answer.

How-to questions ("How do I deploy...?") are answered by commands: a sentence followed by a
code block is quoted with the block's commands (a section that opens with its block, under
its heading), and such sentences are preferred. What the block says it does (the section's
heading, the commands' words and their comments, not the text, paths and values they pass)
counts as much as the sentence leading it. A block of several blank-line-separated groups is a
menu: only the group the question asks about is quoted. A drawing (a diagram's box lines and
arrows) is no command block. Markdown is quoted as plain text. A sentence
that cannot stand alone is never quoted: one that introduces a block or list it does not carry
("...contains:"), one a chunk boundary cut at either end, one starting in lowercase (the rest
of another, such as a list item finishing its lead-in), a table row read out of its table, one
that quotes a question.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from service.models import SearchHit, Turn
from service.query.plaintext import one_line

# "e.g." and "i.e." end no sentence: splitting there left "staging then prod), ..." as one.
_SENTENCE = re.compile(r"(?<=[.!?])(?<![ei]\.[ge]\.)\s+|\n{2,}|\n(?=[#*\-\d|])")
# A table row, or the end of one a chunk boundary cut: cells read out of their table are fragments.
_TABLE_ROW = re.compile(r"^[ \t]*\|.*$|^.*\s\|[ \t]*$", re.MULTILINE)
# Prose starting in lowercase continues a sentence begun elsewhere (a code span starts with `).
_LOWER_START = re.compile(r"[a-z]")
_WORD = re.compile(r"[a-z0-9]+")
_FENCE = re.compile(r"^\s*(```|~~~)")
_FENCE_WITH_LANGUAGE = re.compile(r"^\s*(```|~~~)\s*[\w+-]+")
# A block that draws (a diagram language, or box-drawing characters, arrows and shapes) holds no
# commands: its lines quoted as a command list are noise.
_DRAWING_LANGUAGE = re.compile(r"^\s*(```|~~~)\s*(mermaid|text|plantuml|dot|ascii|svgbob)\b", re.IGNORECASE)
_DRAWING = re.compile("[\u2190-\u21ff\u2500-\u25ff]")
_COMMENT = re.compile(r"\s{2,}#\s")
# What a command passes rather than says: quoted text, and paths, file names, variables, assignments.
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")
_LITERAL = re.compile(r"[/.=:$]")
_BULLET = re.compile(r"^(?:[-*+]|\d{1,2}[.)])\s+")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*)$")
_HOW_TO = re.compile(
    r"\b(how (do|can|should|would|to)|what command|which command|steps? to|way to)\b", re.IGNORECASE
)
_ENDS_SENTENCE = re.compile(r"[.!?)\]`*]\s*$")
# A sentence quoting a question ('"How do I deploy?" cites ...') is about that question, not an
# answer to it: docs that discuss questions (the answer evaluation's) must not answer them.
_QUOTED_QUESTION = re.compile(r"[\"“][^\"”]*\?[\"”]")
# Words a question and a document spell differently for the same thing.
_SYNONYMS = {"production": "prod", "environment": "stack", "environments": "stack"}
# Abbreviations a command spells short and a question spells out (`ragctl dlq` is for the
# dead-letter queue): the abbreviation also counts as the words it stands for.
_ABBREVIATIONS = {"dlq": "dead letter queue"}
# A first deploy runs six commands before its last (`pulumi up`, docs/deploying.md).
MAX_COMMANDS = 8
MAX_COMMAND_CHARS = 300
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "should",
        "so",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "this",
        "to",
        "was",
        "we",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
    ]
)


def _stem(word: str) -> str:
    word = _SYNONYMS.get(word, word)
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    # "rotate", "rotated" and "rotating" meet at "rotat".
    return word[:-1] if word.endswith("e") and len(word) > 4 else word


def keywords(text: str) -> set[str]:
    words = _WORD.findall(text.lower())
    words += [part for word in words for part in _ABBREVIATIONS.get(word, "").split()]
    return {_stem(w) for w in words if w not in STOPWORDS}


def is_how_to(question: str) -> bool:
    return bool(_HOW_TO.search(question))


def _is_prose(sentence: str) -> bool:
    """Commands and code read badly as a quoted answer: keep sentences that are mostly words."""
    letters = sum(ch.isalnum() or ch.isspace() for ch in sentence)
    return letters >= 0.85 * len(sentence) and not any(mark in sentence for mark in ("\\", "{", "$"))


@dataclass(frozen=True)
class Unit:
    """A quotable sentence, its section heading, and the commands of the code block it introduces.

    `groups` is that block as its blank-line-separated groups of lines, comments kept: a block of
    several groups is a menu (one group per task), and the question picks the group it asks about.
    """

    sentence: str
    heading: str
    commands: tuple[str, ...]
    order: int
    complete: bool
    groups: tuple[tuple[str, ...], ...] = ()

    def for_question(self, wanted: set[str]) -> Unit:
        """This unit with only the commands of the block's group that best matches `wanted`."""
        if len(self.groups) < 2:
            return self
        # The group with the line that matches best (then the best group), the first on a tie.
        matches = [
            (
                max(len(wanted & keywords(_described([line]))) for line in group),
                len(wanted & keywords(_described(group))),
            )
            for group in self.groups
        ]
        best = max(matches)
        if best[0] == 0:
            return self
        group = self.groups[matches.index(best)]
        return replace(self, commands=_commands(group), groups=(group,))

    def context(self) -> set[str]:
        """The words that say what the commands do: the heading, the commands' names, their comments."""
        return keywords(self.heading) | keywords(
            _described([line for group in self.groups for line in group])
        )

    def render(self) -> str:
        if not self.commands:
            return self.sentence
        lead = self.sentence if self.sentence.endswith(":") else self.sentence.rstrip(".") + ":"
        return f"{lead} {'; '.join(self.commands)}"


def _commands(lines: Sequence[str]) -> tuple[str, ...]:
    out: list[str] = []
    used = 0
    for line in _joined(lines):
        command = _COMMENT.split(line)[0].strip()
        if not command or command.startswith("#") or used + len(command) > MAX_COMMAND_CHARS:
            continue
        out.append(command)
        used += len(command)
        if len(out) == MAX_COMMANDS:
            break
    return tuple(out)


def _joined(lines: Sequence[str]) -> list[str]:
    """Shell lines with their backslash continuations joined: one command per entry."""
    out: list[str] = []
    carry = ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            carry += line.rstrip()[:-1].strip() + " "
            continue
        out.append(carry + line.strip())
        carry = ""
    if carry:
        out.append(carry.strip())
    return out


def _described(lines: Sequence[str]) -> str:
    """What a block's lines say they do: the commands' words and their comments, without the
    quoted text, paths, file names, variables and assignments they pass."""
    return " ".join(
        token for line in lines for token in _QUOTED.sub(" ", line).split() if not _LITERAL.search(token)
    )


def _groups(block: str) -> tuple[tuple[str, ...], ...]:
    """A code block's lines in their blank-line-separated groups."""
    groups = [
        tuple(line for line in part.splitlines() if line.strip()) for part in re.split(r"\n\s*\n", block)
    ]
    return tuple(group for group in groups if group)


def _blocks(text: str) -> list[tuple[str, str]]:
    """The passage as (kind, text) blocks: "prose", "code", "drawing" (a diagram), or "cut" (code
    the chunk cut)."""
    blocks: list[tuple[str, str]] = []
    prose: list[str] = []
    code: list[str] | None = None
    opener = ""
    lines = text.splitlines()
    fences = [i for i, line in enumerate(lines) if _FENCE.match(line)]
    if len(fences) % 2 == 1 and not _FENCE_WITH_LANGUAGE.match(lines[fences[0]]):
        # The chunk starts inside a code block (its opening fence is in the previous chunk).
        blocks.append(("cut", "\n".join(lines[: fences[0]])))
        lines = lines[fences[0] + 1 :]
    for line in lines:
        if _FENCE.match(line):
            if code is None:
                blocks.append(("prose", "\n".join(prose)))
                prose, code, opener = [], [], line
            else:
                body = "\n".join(code)
                drawing = _DRAWING_LANGUAGE.match(opener) or _DRAWING.search(body)
                blocks.append(("drawing" if drawing else "code", body))
                code = None
        elif code is not None:
            code.append(line)
        else:
            prose.append(line)
    if code is not None:  # a block the chunk boundary cut: its commands may be incomplete
        blocks.append(("cut", "\n".join(code)))
    blocks.append(("prose", "\n".join(prose)))
    return blocks


def units(passage: SearchHit) -> list[Unit]:
    """The passage's prose sentences in order, each with the code block that follows it."""
    blocks = _blocks(passage.text)
    heading = ""
    out: list[Unit] = []
    first = True
    for index, (kind, text) in enumerate(blocks):
        if kind != "prose":
            continue
        following = blocks[index + 1] if index + 1 < len(blocks) else ("end", "")
        pieces = [p for p in _SENTENCE.split(_TABLE_ROW.sub("", text)) if p.strip()]
        for number, raw in enumerate(pieces):
            last = number == len(pieces) - 1
            block = following[1] if last and following[0] == "code" else ""
            commands, groups = _commands(block.splitlines()), _groups(block)
            match = _HEADING.match(raw.strip())
            if match:
                heading = one_line(match.group(1))
                first = False
                if commands:  # a section that opens with its commands: the heading leads them
                    out.append(Unit(f"{heading}:", heading, commands, len(out), True, groups))
                continue
            sentence = _BULLET.sub("", one_line(raw))
            # A chunk that starts mid-sentence (its overlap with the previous one) or ends
            # mid-sentence leaves fragments; a colon promises a block or list we do not quote.
            cut_start = first and passage.position > 0 and sentence[:1].islower()
            # ...as does a list item finishing the sentence that introduced its list.
            cut_start = cut_start or bool(_LOWER_START.match(_BULLET.sub("", raw.strip())))
            cut_end = last and following[0] == "end" and not _ENDS_SENTENCE.search(raw)
            dangling = sentence.endswith(":") and not commands
            # A commented shell line of a block the chunk boundary cut open reads as prose.
            dangling = dangling or bool(_COMMENT.search(raw)) or bool(_QUOTED_QUESTION.search(sentence))
            first = False
            complete = not (cut_start or cut_end or dangling)
            out.append(Unit(sentence, heading, commands, len(out), complete, groups))
    return out


class ExtractiveGenerator:
    """Quotes up to `max_sentences` sentences, each followed by its passage's [n]."""

    def __init__(self, max_sentences: int = 3, max_chars: int = 600) -> None:
        self.max_sentences = max_sentences
        self.max_chars = max_chars

    @property
    def name(self) -> str:
        return "extractive"

    def condense(self, question: str, history: Sequence[Turn]) -> str:
        # Without a model, carry the previous user turn's keywords so "and in prod?" still retrieves.
        previous = [t.content for t in history if t.role == "user"]
        return f"{previous[-1]} {question}" if previous else question

    def _ranked(self, question: str, passages: Sequence[SearchHit]) -> list[tuple[float, int, Unit]]:
        wanted = keywords(question)
        how_to = is_how_to(question)
        scored: list[tuple[float, int, Unit]] = []
        for number, passage in enumerate(passages, 1):
            for found in units(passage):
                unit = found.for_question(wanted)
                short = len(unit.sentence) < 20 and not unit.commands
                if not unit.complete or short or not _is_prose(unit.sentence):
                    continue
                said = wanted & keywords(unit.sentence)
                context = wanted & unit.context() - said
                if how_to and unit.commands:
                    # A how-to answer is the commands: what they are for (the section's heading,
                    # the commands and their comments) counts as much as the sentence leading them.
                    value = len(said) + len(context) + 1.0
                else:
                    value = len(said) + 0.5 * len(context)
                if not said and not (how_to and unit.commands and context):
                    continue
                # Earlier passages and earlier sentences win ties: retrieval already ranked them.
                scored.append((value - 0.1 * number - 0.001 * unit.order, number, unit))
        scored.sort(key=lambda item: item[0], reverse=True)
        return scored

    def stream(self, question: str, passages: Sequence[SearchHit]) -> Iterator[str]:
        chosen: list[tuple[int, str]] = []
        used = 0
        for _, number, unit in self._ranked(question, passages):
            text = unit.render()
            if len(chosen) == self.max_sentences or (chosen and used + len(text) > self.max_chars):
                break
            chosen.append((number, text))
            used += len(text)
        for index, (number, text) in enumerate(chosen):
            yield ("" if index == 0 else " ") + f"{text} [{number}]"
