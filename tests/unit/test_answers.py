from __future__ import annotations

from service.generate.extractive import ExtractiveGenerator
from service.models import SearchHit, Turn
from service.query.citations import Renumberer, renumber, strip_unknown
from service.query.service import NO_ANSWER, finish


def hit(number: int, text: str, document: str | None = None, position: int = 0) -> SearchHit:
    document_id = document or f"d{number}"
    return SearchHit(
        chunk_id=f"c{number}",
        document_id=document_id,
        title=f"Doc {document_id}",
        source=f"s3://b/{document_id}",
        text=text,
        snippet=text[:50],
        score=1.0 / number,
        position=position,
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
    assert [(c.number, c.document_id) for c in renumber(answer, passages)[1]] == [(1, "d1")]


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


def test_citations_are_numbered_contiguously_in_order_of_first_mention() -> None:
    # Given an answer citing passages 3 and 1 of three
    passages = [hit(1, "a"), hit(2, "b"), hit(3, "c")]
    # When it is finished
    answer, citations = finish("Charlie [3]. Alpha [1]. Charlie again [3].", passages)
    # Then the reader sees [1] and [2], with no gap, in reading order
    assert answer == "Charlie [1]. Alpha [2]. Charlie again [1]."
    assert [(c.number, c.document_id) for c in citations] == [(1, "d3"), (2, "d1")]


def test_passages_of_one_document_share_one_citation() -> None:
    # Given two passages of the same document and one of another
    passages = [
        hit(1, "a", "docs/deploying.md"),
        hit(2, "b", "docs/cicd.md"),
        hit(3, "c", "docs/deploying.md"),
    ]
    # When an answer cites all three, two of them side by side
    answer, citations = finish("Build it [1]. Ship it [2]. Then run it [3][1].", passages)
    # Then the document is cited once, under one number, and "[1][1]" collapses
    assert answer == "Build it [1]. Ship it [2]. Then run it [1]."
    assert [c.document_id for c in citations] == ["docs/deploying.md", "docs/cicd.md"]
    assert len({c.title for c in citations}) == len(citations)


def test_an_invented_citation_is_removed_and_the_answer_says_so() -> None:
    # Given a generator citing [7] with two passages retrieved
    passages = [hit(1, "alpha"), hit(2, "beta")]
    # When the answer is finished
    answer, citations = finish("Alpha is first [2]. Gamma is seventh [7].", passages)
    # Then [7] is gone, the answer says it was removed, and only real passages are cited
    assert answer.startswith("Alpha is first [1]. Gamma is seventh.")
    assert answer.endswith("(Removed citation [7]: no retrieved passage has that number.)")
    assert [c.document_id for c in citations] == ["d2"]


def test_markers_split_across_streamed_pieces_are_renumbered_whole() -> None:
    # Given a stream whose marker arrives in pieces
    renumberer = Renumberer([hit(1, "a"), hit(2, "b")])
    pieces = ["Beta is second ", "[", "2", "]. Also [", "9]", " done."]
    # When each piece is fed
    text = "".join(renumberer.feed(p) for p in pieces) + renumberer.close()
    # Then the result is as if the whole answer had been rewritten at once
    assert text == renumber("".join(pieces), [hit(1, "a"), hit(2, "b")])[0]
    assert text.startswith("Beta is second [1]. Also done.")


def test_how_to_questions_are_answered_with_the_commands_of_the_page_that_has_them() -> None:
    # Given an overview passage in prose and a how-to passage with a code block
    overview = hit(
        1, "Every merge to main deploys to staging, then to production after an approval.", "docs/cicd.md"
    )
    how_to = hit(
        2,
        "## Deploying\n\nThe same zip is deployed to every stack:\n\n```bash\n"
        "make package          # builds the zip\npulumi up -s prod\n```\n",
        "docs/deploying.md",
    )
    # When the extractive generator answers a how-to question
    answer, citations = finish(
        "".join(ExtractiveGenerator().stream("How do I deploy to production?", [overview, how_to])),
        [overview, how_to],
    )
    # Then it leads with the commands, rendered as plain text, and cites the page that has them
    assert answer.startswith("The same zip is deployed to every stack: make package; pulumi up -s prod [1]")
    assert citations[0].document_id == "docs/deploying.md"


def test_markdown_is_quoted_as_plain_text_in_answers_and_snippets() -> None:
    # Given a passage with headings, emphasis, code spans and links
    text = "# Keys\n\nSet **`apiKeys`** as a [secret](https://example.com) with `MAX_BODY_BYTES` unchanged."
    passage = hit(1, text).model_copy(
        update={"snippet": "## Keys\n\nSet **`apiKeys`** as a <mark>secret</mark>"}
    )
    # When a question is answered from it
    answer, citations = finish("".join(ExtractiveGenerator().stream("apiKeys secret", [passage])), [passage])
    # Then neither the answer nor the snippet shows markup, and names keep their underscores
    assert answer == "Set apiKeys as a secret with MAX_BODY_BYTES unchanged. [1]"
    assert citations[0].snippet == "Keys Set apiKeys as a <mark>secret</mark>"


def test_no_dangling_fragment_is_quoted() -> None:
    # Given passages whose matching sentences introduce a list, or were cut by a chunk boundary
    passages = [
        hit(1, "The staging stack file contains:\n\n- owner\n- budget"),
        hit(2, "staging stack, with its own budget. Nothing else.", position=3),
        hit(3, "Deploys to staging run on every merge and the staging stack gets the new zip"),
    ]
    # When a follow-up question matches all of them
    answer = "".join(ExtractiveGenerator().stream("and for staging?", passages))
    # Then none of the fragments is quoted
    assert answer == ""


def test_commands_keep_their_continuation_lines_and_lose_their_comments() -> None:
    # Given a how-to passage whose command spans lines and carries a comment
    passage = hit(
        1,
        "Ask the local API with curl:\n\n```bash\ncurl -s http://127.0.0.1:8000/v1/query \\\n"
        '  -H "x-api-key: $KEY"     # the key make dev printed\n```\n',
    )
    # When a how-to question is answered from it
    answer = "".join(ExtractiveGenerator().stream("How do I ask the local API?", [passage]))
    # Then the command is one line, without the comment
    assert (
        answer
        == 'Ask the local API with curl: curl -s http://127.0.0.1:8000/v1/query -H "x-api-key: $KEY" [1]'
    )


def test_a_chunk_that_starts_inside_a_code_block_is_not_quoted_as_prose() -> None:
    # Given a chunk whose opening fence was in the previous chunk, then a list item in prose
    passage = hit(
        1,
        "ragctl docs list [--status failed] [--json]    # every document with its status\n```\n\n"
        "- Failed documents are listed with their reason.",
        position=4,
    )
    # When a question matches both
    answer = "".join(ExtractiveGenerator().stream("list failed documents", [passage]))
    # Then only the prose is quoted, without its bullet
    assert answer == "Failed documents are listed with their reason. [1]"


def test_a_table_row_is_never_quoted_as_a_sentence() -> None:
    # Given a passage whose only sentence about production is a markdown table row
    passage = hit(
        1,
        "Environments:\n\n| Environment | Protection |\n| --- | --- |\n"
        "| `production` | required reviewers; deploy branches: main only |\n\n"
        "Production deploys wait for a reviewer's approval.",
    )
    # When a question matches the row and the sentence
    answer = "".join(ExtractiveGenerator().stream("How do production deploys work?", [passage]))
    # Then only the sentence is quoted: a row read out of its table is a fragment
    assert answer == "Production deploys wait for a reviewer's approval. [1]"


def test_a_sentence_quoting_a_question_does_not_answer_it() -> None:
    # Given a page that discusses the question (an evaluation write-up) and one that answers it
    passages = [
        hit(1, '"How do I deploy to production?" cites the overview, not the deploy guide.', "eval.md"),
        hit(2, "Deploy to production with pulumi up on the prod stack.", "deploying.md"),
    ]
    # When the question is asked
    answer, citations = finish(
        "".join(ExtractiveGenerator().stream("How do I deploy to production?", passages)), passages
    )
    # Then only the answering page is quoted and cited
    assert answer == "Deploy to production with pulumi up on the prod stack. [1]"
    assert [c.document_id for c in citations] == ["deploying.md"]


def test_a_deploy_procedure_is_quoted_through_its_deploy_command() -> None:
    # Given a how-to passage whose block runs six commands before the deploy itself
    commands = [
        "make venv",
        "make package",
        "pulumi login",
        "pulumi stack select --create staging",
        "pulumi preview -s staging --policy-pack infra/policy",
        "pulumi up -s staging --policy-pack infra/policy",
    ]
    passage = hit(
        1, "## Deploying\n\nThe first deploy of a stack:\n\n```bash\n" + "\n".join(commands) + "\n```\n"
    )
    # When a how-to question is answered from it
    answer = "".join(ExtractiveGenerator().stream("How do I deploy a stack?", [passage]))
    # Then every command is quoted, the deploy command included
    assert answer == f"The first deploy of a stack: {'; '.join(commands)} [1]"


def test_a_citation_snippet_from_a_list_shows_no_bullets() -> None:
    # Given a passage whose snippet is a list, as the search engine highlighted it
    passage = hit(1, "x").model_copy(
        update={"snippet": "- <mark>Deploy</mark> with pulumi up.\n* Then run the smoke test.\n+ Done"}
    )
    # When it is cited
    _, citations = finish("Deploy it [1].", [passage])
    # Then the snippet reads as text, without the list markers
    assert citations[0].snippet == "<mark>Deploy</mark> with pulumi up. Then run the smoke test. Done"


def test_no_sentence_of_a_table_row_is_quoted_nor_one_an_abbreviation_split() -> None:
    # Given a table row holding two sentences, a row the chunk boundary cut, and prose with "e.g."
    passage = hit(
        1,
        "| `ephemeral.yml` | labelled | Deploys a stack. Closing the PR destroys a stack a run left. |\n"
        "a deploy of each stack in the declared order. |\n\n"
        "Stacks deploy in their declared order, e.g. staging then prod, one stack at a time.",
    )
    # When a question matches all of them
    answer = "".join(ExtractiveGenerator().stream("How does a stack deploy, or get destroyed?", [passage]))
    # Then only the whole prose sentence is quoted
    assert answer == "Stacks deploy in their declared order, e.g. staging then prod, one stack at a time. [1]"


def test_a_list_item_finishing_the_sentence_that_introduced_it_is_not_quoted() -> None:
    # Given a list whose items complete the sentence introducing the list
    passage = hit(
        1,
        "The target comes from one of:\n\n"
        "- environment variables alone: POSTDEPLOY_API_URL and POSTDEPLOY_API_KEY.\n"
        "- `ragctl dev` writes the platform file with the API URL and key.",
    )
    # When a question matches both items
    answer = "".join(ExtractiveGenerator().stream("Which environment variables name the API URL?", [passage]))
    # Then the fragment is not quoted; the item that is a sentence (a command first) is
    assert answer == "ragctl dev writes the platform file with the API URL and key. [1]"


def test_a_section_that_opens_with_its_commands_is_quoted_under_its_heading() -> None:
    # Given a how-to section whose code block follows its heading directly
    passage = hit(
        1,
        "## Destroying a stack\n\n```bash\npulumi destroy -s staging\n"
        "pulumi stack rm staging      # forgets the stack\n```\n\nStaging empties its bucket first.",
    )
    # When a how-to question is answered from it
    answer = "".join(ExtractiveGenerator().stream("How do I destroy a stack?", [passage]))
    # Then the heading leads the commands
    assert answer.startswith("Destroying a stack: pulumi destroy -s staging; pulumi stack rm staging [1]")


MENU = (
    "## Maintenance commands\n\n```bash\n"
    "tool backup run            # copy the database to the archive\ntool backup list\n\n"
    "tool cache purge --all     # empty the cache after an upgrade\ntool cache stats\n\n"
    "tool dlq list              # poison messages and their reasons\n"
    "tool dlq redrive <id>      # processed again, once fixed\n```\n"
)


def test_a_how_to_question_gets_the_group_of_a_command_menu_it_asks_about() -> None:
    # Given a section that opens with a block of several blank-line-separated groups of commands
    passage = hit(1, MENU)
    # When a how-to question names the task of one group only in its comment
    answer = "".join(ExtractiveGenerator().stream("How do I empty the cache after an upgrade?", [passage]))
    # Then that group's commands are quoted under the heading, and no other group's
    assert answer == "Maintenance commands: tool cache purge --all; tool cache stats [1]"


def test_a_command_abbreviation_counts_as_the_words_it_stands_for() -> None:
    # Given the same menu, whose dead-letter commands say `dlq`
    passage = hit(1, MENU)
    # When the question spells out the dead-letter queue
    answer = "".join(
        ExtractiveGenerator().stream("How do I see what is in the dead-letter queue?", [passage])
    )
    # Then the dlq group is the one quoted
    assert answer == "Maintenance commands: tool dlq list; tool dlq redrive <id> [1]"


def test_what_a_block_says_it_does_counts_as_much_as_its_lead_in() -> None:
    # Given an overview sentence sharing every word of the question, and a section whose heading
    # and comments name the task its lead-in sentence only touches
    overview = hit(1, "This page explains how a team gets a new user added.")
    how_to = hit(
        2,
        "## Adding users\n\nA user needs only an invitation; the team follows:\n\n```bash\n"
        "tool invite alice@example.com   # sends the new user a sign-in link\n"
        "tool team join ops alice\n```\n",
    )
    # When a how-to question is answered from both
    answer = "".join(ExtractiveGenerator().stream("How do I add a new user to a team?", [overview, how_to]))
    # Then the commands lead the answer
    assert answer.startswith(
        "A user needs only an invitation; the team follows: tool invite alice@example.com; "
        "tool team join ops alice [2]"
    ), answer


def test_a_diagram_is_not_quoted_as_commands() -> None:
    # Given a section that opens with a drawing, then prose
    passage = hit(
        1,
        "## The flow\n\n```\nbucket ──▶ queue ──▶ worker ──▶ index\n```\n\n"
        "The worker reads each message from the queue and writes the index.",
    )
    # When a how-to question matches both
    answer = "".join(
        ExtractiveGenerator().stream("How do I follow the flow from queue to worker?", [passage])
    )
    # Then only the prose is quoted
    assert answer == "The worker reads each message from the queue and writes the index. [1]"


def test_a_question_a_command_quotes_does_not_make_it_an_answer() -> None:
    # Given a section whose only command passes a question as its quoted argument
    passage = hit(1, '## Asking\n\n```bash\ntool ask "How do I destroy a stack?"   # prints an answer\n```\n')
    # When that question is asked
    answer = "".join(ExtractiveGenerator().stream("How do I destroy a stack?", [passage]))
    # Then nothing is quoted: the block is about asking, not destroying
    assert answer == ""
