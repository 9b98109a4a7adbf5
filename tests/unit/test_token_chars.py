"""The cluster tokenizer's word characters are exactly tantivy's (`service.search.token_chars`).

The pattern itself runs through osmem-server's (Go) and the real engines' (Java) `_analyze`
in `tests/contract/test_analyzer_parity.py`.
"""

from __future__ import annotations

import unicodedata

import tantivy

from service.search.token_chars import EXTRA_WORD_CHARS, is_extra_word_char


def _tantivy_word_chars() -> set[int]:
    simple = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple()).build()
    points = [cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]
    return {ord(token) for token in simple.analyze(" ".join(map(chr, points))) if len(token) == 1}


def _letter_or_number(cp: int) -> bool:
    return unicodedata.category(chr(cp))[0] in "LN"


def test_the_pattern_keeps_exactly_the_characters_tantivy_keeps_in_words() -> None:
    # Given every code point tantivy's simple tokenizer keeps inside a word
    words = _tantivy_word_chars()

    # Then each is a letter, a number or one of the listed extras (tantivy's Unicode may be
    # newer than Python's, so a letter Python does not know yet may be listed too)
    assert all(_letter_or_number(cp) or is_extra_word_char(cp) for cp in words)
    # And every listed extra is a word character for tantivy, and no letter or number is cut
    assert all(cp in words for start, end in EXTRA_WORD_CHARS for cp in range(start, end + 1))
    assert not [cp for cp in range(0x110000) if _letter_or_number(cp) and cp not in words][:1]
