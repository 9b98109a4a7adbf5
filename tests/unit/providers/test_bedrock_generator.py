"""BedrockGenerator: the exact Converse / ConverseStream requests, streamed text, and error mapping.

`converse` is tested with botocore's Stubber. `converse_stream` is not: Stubber
validates the stubbed response against the output shape and rejects anything but
a dict for the `stream` member, so it cannot stand in for an event stream. Those
tests instead answer the signed HTTP request from a `before-send` hook with real
binary event-stream frames (https://docs.aws.amazon.com/AmazonS3/latest/API/RESTSelectObjectAppendix.html
describes the framing), so the request is serialized and the response parsed by
botocore itself, in-stream exceptions included, and nothing leaves the process.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse, HTTPHeaders
from botocore.stub import Stubber

from service.generate.bedrock import BedrockGenerator
from service.generate.prompts import CONDENSE_SYSTEM_PROMPT, SYSTEM_PROMPT, answer_prompt, condense_prompt
from service.generate.protocol import AnswerGenerator, GenerationError
from service.models import SearchHit, Turn

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    # 7 = string header value type.
    return struct.pack(">B", len(raw_name)) + raw_name + struct.pack(">BH", 7, len(raw_value)) + raw_value


def _frame(headers: dict[str, str], payload: dict[str, Any]) -> bytes:
    """One event-stream message: prelude (lengths + CRC), headers, JSON payload, message CRC."""
    head = b"".join(_header(k, v) for k, v in headers.items())
    body = json.dumps(payload).encode()
    prelude = struct.pack(">II", 12 + len(head) + len(body) + 4, len(head))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + head + body
    return message + struct.pack(">I", zlib.crc32(message))


def event(kind: str, payload: dict[str, Any]) -> bytes:
    return _frame(
        {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}, payload
    )


def exception(kind: str, message: str) -> bytes:
    headers = {":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"}
    return _frame(headers, {"message": message})


def delta(text: str) -> bytes:
    return event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": text}})


class _Raw:
    def __init__(self, frames: list[bytes]) -> None:
        self.frames = frames

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield from self.frames

    def close(self) -> None:
        pass


def _body(request: AWSPreparedRequest) -> bytes:
    assert isinstance(request.body, bytes)
    return request.body


def answer_stream_with(client: Any, frames: list[bytes], status: int = 200) -> list[AWSPreparedRequest]:
    """Make ConverseStream answer with `frames`; returns the list the sent requests are recorded in."""
    sent: list[AWSPreparedRequest] = []

    def before_send(request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        sent.append(request)
        headers = HTTPHeaders()
        headers["content-type"] = "application/vnd.amazon.eventstream"
        return AWSResponse(request.url, status, headers, _Raw(frames))

    client.meta.events.register("before-send.bedrock-runtime.ConverseStream", before_send)
    return sent


def test_stream_sends_one_converse_stream_request_and_yields_the_text_deltas(
    bedrock_client: Any, passages: list[SearchHit]
) -> None:
    # Given a model that streams three text deltas between the usual start/stop/metadata events
    sent = answer_stream_with(
        bedrock_client,
        [
            event("messageStart", {"role": "assistant"}),
            delta("Run `ragctl reindex` "),
            delta("after changing the embedder"),
            delta(" [2]."),
            event("contentBlockStop", {"contentBlockIndex": 0}),
            event("messageStop", {"stopReason": "end_turn"}),
            event(
                "metadata",
                {
                    "usage": {"inputTokens": 90, "outputTokens": 12, "totalTokens": 102},
                    "metrics": {"latencyMs": 300},
                },
            ),
        ],
    )
    generator = BedrockGenerator(bedrock_client, model_id=MODEL, max_tokens=512, temperature=0.1)

    # When an answer is streamed
    pieces = list(generator.stream("How do I switch embedders?", passages))

    # Then the pieces are the deltas, in order
    assert pieces == ["Run `ragctl reindex` ", "after changing the embedder", " [2]."]
    # And exactly one request went to the model's converse-stream path with the prompt and inference config
    assert len(sent) == 1
    path = f"/model/{MODEL.replace(':', '%3A')}/converse-stream"
    assert sent[0].url == "https://bedrock-runtime.us-east-1.amazonaws.com" + path
    # (botocore moves `modelId` into the URL path, so the JSON body holds the rest.)
    assert json.loads(_body(sent[0])) == {
        "system": [{"text": SYSTEM_PROMPT}],
        "messages": [
            {"role": "user", "content": [{"text": answer_prompt("How do I switch embedders?", passages)}]}
        ],
        "inferenceConfig": {"maxTokens": 512, "temperature": 0.1},
    }
    assert isinstance(generator, AnswerGenerator)
    assert generator.name == "bedrock"


def test_throttling_inside_the_event_stream_is_a_transient_error(
    bedrock_client: Any, passages: list[SearchHit]
) -> None:
    # Given a stream that starts, then reports throttling in-band
    answer_stream_with(
        bedrock_client, [delta("Partial"), exception("throttlingException", "Too many tokens")]
    )
    generator = BedrockGenerator(bedrock_client, model_id=MODEL)

    # When the answer is consumed
    pieces: list[str] = []
    with pytest.raises(GenerationError) as caught:
        pieces.extend(generator.stream("q", passages))

    # Then the text before the failure was yielded and the error is transient
    assert pieces == ["Partial"]
    assert caught.value.transient is True


def test_a_validation_error_inside_the_event_stream_is_permanent(
    bedrock_client: Any, passages: list[SearchHit]
) -> None:
    # Given a stream that fails validation in-band
    answer_stream_with(bedrock_client, [exception("validationException", "Input is too long")])

    # When the answer is consumed
    with pytest.raises(GenerationError) as caught:
        list(BedrockGenerator(bedrock_client, model_id=MODEL).stream("q", passages))

    # Then the error is permanent and says why
    assert caught.value.transient is False
    assert "Input is too long" in str(caught.value)


@pytest.mark.parametrize(
    ("code", "status", "transient"),
    [
        ("ThrottlingException", 429, True),
        ("ServiceUnavailableException", 503, True),
        ("ModelNotReadyException", 429, True),
        ("ValidationException", 400, False),
        ("AccessDeniedException", 403, False),
        ("ResourceNotFoundException", 404, False),
    ],
)
def test_converse_stream_errors_map_to_transient_or_permanent(
    bedrock_client: Any, passages: list[SearchHit], code: str, status: int, transient: bool
) -> None:
    # Given ConverseStream itself fails before the stream starts
    with Stubber(bedrock_client) as stub:
        stub.add_client_error("converse_stream", code, "failed", status)

        # When an answer is requested
        with pytest.raises(GenerationError) as caught:
            list(BedrockGenerator(bedrock_client, model_id=MODEL).stream("q", passages))

    # Then throttling and unavailability are transient; everything else is permanent
    assert caught.value.transient is transient
    assert code in str(caught.value)


def test_condense_sends_one_converse_call_with_the_transcript(bedrock_client: Any) -> None:
    # Given a conversation and a model that rewrites the follow-up
    history = [
        Turn(role="user", content="How do I deploy the staging stack?"),
        Turn(role="assistant", content="Run make deploy STACK=staging [1]."),
    ]
    expected = {
        "modelId": MODEL,
        "system": [{"text": CONDENSE_SYSTEM_PROMPT}],
        "messages": [{"role": "user", "content": [{"text": condense_prompt("and prod?", history)}]}],
        "inferenceConfig": {"maxTokens": 200, "temperature": 0.0},
    }
    response = {
        "output": {
            "message": {"role": "assistant", "content": [{"text": '"How do I deploy the prod stack?"\n'}]}
        },
        "stopReason": "end_turn",
        "usage": {"inputTokens": 50, "outputTokens": 9, "totalTokens": 59},
        "metrics": {"latencyMs": 120},
    }
    with Stubber(bedrock_client) as stub:
        stub.add_response("converse", response, expected)

        # When the follow-up is condensed
        question = BedrockGenerator(bedrock_client, model_id=MODEL).condense("and prod?", history)

        # Then the request matched exactly and the rewrite comes back without quotes
        stub.assert_no_pending_responses()
    assert question == "How do I deploy the prod stack?"


def test_condense_without_history_makes_no_call(bedrock_client: Any) -> None:
    # Given a stubbed client with no responses queued (any call would raise)
    with Stubber(bedrock_client):
        # When a first question is condensed
        # Then it comes back unchanged
        assert BedrockGenerator(bedrock_client, model_id=MODEL).condense("What is RRF?", []) == "What is RRF?"


def test_condense_throttled_is_transient(bedrock_client: Any) -> None:
    # Given Converse is throttled
    with Stubber(bedrock_client) as stub:
        stub.add_client_error("converse", "ThrottlingException", "slow down", 429)

        # When a follow-up is condensed
        with pytest.raises(GenerationError) as caught:
            BedrockGenerator(bedrock_client, model_id=MODEL).condense(
                "and prod?", [Turn(role="user", content="hi")]
            )

    # Then the caller may retry
    assert caught.value.transient is True
