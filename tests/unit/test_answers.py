from __future__ import annotations

from service.generate.extractive import ExtractiveGenerator
from service.models import SearchHit, Turn
from service.query.citations import citations_for, strip_unknown
from service.query.service import NO_ANSWER, finish


def hit(number: int, text: str) -> SearchHit:
    return SearchHit(
        chunk_id=f"c{number}",
        document_id=f"d{number}",
        title=f"Doc {number}",
        source=f"s3://b/d{number}",
        text=text,
        snippet=text[:50],
        score=1.0 / number,
    )


def test_extractive_quotes_matching_sentences_with_their_passage_numbers() -> None:
    # Given two passages, the second holding the answer
    passages = [
        hit(1, "Buckets hold documents. Nothing here mentions the weather."),
        hit(2, "Staging deploys run pulumi up with the staging stack. Prod needs an approval."),
    ]
    # When the extractive generator answers
    answer = "".join(ExtractiveGenerator().stream("How do staging deploys run?", passages))
    # Then it quotes the relevant sentence and cites passage 2
    assert "Staging deploys run pulumi up with the staging stack. [2]" in answer
    assert "weather" not in answer


def test_extractive_says_nothing_when_no_sentence_shares_a_word() -> None:
    passages = [hit(1, "Completely unrelated content about gardening and soil.")]
    assert "".join(ExtractiveGenerator().stream("quantum chromodynamics lattice", passages)) == ""


def test_finish_says_so_when_nothing_relevant_was_found() -> None:
    assert finish("", [hit(1, "x")]) == (NO_ANSWER, [])


def test_citations_map_markers_to_passages_and_never_invent_one() -> None:
    # Given an answer citing a passage that was returned and one that was not
    passages = [hit(1, "alpha"), hit(2, "beta")]
    answer = strip_unknown("Alpha is first [1]. Gamma is third [7].", len(passages))
    # Then the unknown marker is gone and only the real one becomes a citation
    assert answer == "Alpha is first [1]. Gamma is third."
    assert [(c.number, c.document_id) for c in citations_for(answer, passages)] == [(1, "d1")]


def test_condense_carries_the_previous_question() -> None:
    history = [
        Turn(role="user", content="How do I deploy staging?"),
        Turn(role="assistant", content="Run it."),
    ]
    assert ExtractiveGenerator().condense("and prod?", history) == "How do I deploy staging? and prod?"


def test_extractive_skips_commands_and_code() -> None:
    # Given a passage whose only match for the question is a shell command, and one in prose
    passages = [
        hit(
            1,
            'curl -s http://127.0.0.1:8000/v1/query -H "x-api-key: $KEY" '
            '-d \'{"question": "deploy staging"}\'',
        ),
        hit(2, "To deploy staging, merge to main and the pipeline runs pulumi up for you."),
    ]
    # When the extractive generator answers
    answer = "".join(ExtractiveGenerator().stream("How do I deploy staging?", passages))
    # Then it quotes the prose, not the command
    assert answer == "To deploy staging, merge to main and the pipeline runs pulumi up for you. [2]"
