"""A small local stand-in for the Bedrock runtime API, for the artifact smoke (`artifact_smoke.py`).

It serves the three operations the handlers call, over plain HTTP on 127.0.0.1, so a
function reaches it through botocore's per-service endpoint variable
(`AWS_ENDPOINT_URL_BEDROCK_RUNTIME`) and nothing else in its configuration changes:
- InvokeModel for Amazon Titan Text Embeddings v2: `POST /model/{modelId}/invoke`, body
  `{"inputText", "dimensions", "normalize"}`, answer `{"embedding", "inputTextTokenCount"}`
  (https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-embed-text.html);
- Converse: `POST /model/{modelId}/converse`
  (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html);
- ConverseStream: `POST /model/{modelId}/converse-stream`, answered in the AWS event-stream
  encoding (https://docs.aws.amazon.com/AmazonS3/latest/API/RESTSelectObjectAppendix.html
  describes the frame: prelude, headers, payload, CRC32s) with the events of
  https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStreamOutput.html.

Like the service, it refuses what the cloud would refuse: a request without a SigV4
`Authorization` header, an unknown operation, a Titan body with a dimension Titan does
not offer, a Converse request without messages. Every request is recorded for assertions.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import math
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

TITAN_V2_DIMENSIONS = frozenset({256, 512, 1024})
TITAN_V2_PREFIX = "amazon.titan-embed-text-v2"
ANSWER_PREFIX = "From the sources"


@dataclass
class Call:
    operation: str
    model_id: str
    body: dict[str, Any]


@dataclass
class Recorder:
    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, call: Call) -> None:
        with self.lock:
            self.calls.append(call)

    def operations(self) -> list[str]:
        with self.lock:
            return [c.operation for c in self.calls]


def embedding(text: str, dimension: int) -> list[float]:
    """A deterministic unit vector for `text` (same text, same vector), as Titan's `normalize: true` gives."""
    raw: list[float] = []
    counter = 0
    while len(raw) < dimension:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        raw.extend((b - 127.5) / 127.5 for b in digest)
        counter += 1
    vector = raw[:dimension]
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def _header(name: str, value: str) -> bytes:
    encoded_name, encoded_value = name.encode(), value.encode()
    # Header value type 7 is a string: 2-byte length, then UTF-8 bytes.
    return (
        struct.pack("!B", len(encoded_name))
        + encoded_name
        + struct.pack("!BH", 7, len(encoded_value))
        + encoded_value
    )


def event_frame(event_type: str, payload: dict[str, Any]) -> bytes:
    """One event-stream message: total length, headers length, prelude CRC, headers, payload, message CRC."""
    headers = b"".join(
        _header(name, value)
        for name, value in (
            (":event-type", event_type),
            (":content-type", "application/json"),
            (":message-type", "event"),
        )
    )
    body = json.dumps(payload).encode()
    total = 12 + len(headers) + len(body) + 4
    prelude = struct.pack("!II", total, len(headers))
    prelude_crc = struct.pack("!I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + prelude_crc + headers + body
    return message + struct.pack("!I", binascii.crc32(message) & 0xFFFFFFFF)


def answer_text(body: dict[str, Any]) -> str:
    """A grounded-looking answer that cites the first passage, so citation parsing runs too."""
    user = body["messages"][-1]["content"][0]["text"]
    return f"{ANSWER_PREFIX} [1]: {user.splitlines()[0][:80]}"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", "fake-bedrock-request")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, code: str, message: str) -> None:
        # The REST-JSON error shape botocore parses: the code in a header, the message in the body.
        self._send(
            status, json.dumps({"message": message}).encode(), "application/json", {"x-amzn-ErrorType": code}
        )

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if not (self.headers.get("Authorization") or "").startswith("AWS4-HMAC-SHA256"):
            self._error(403, "AccessDeniedException", "request is not signed with SigV4")
            return
        parts = self.path.split("?")[0].strip("/").split("/")
        if len(parts) != 3 or parts[0] != "model":
            self._error(404, "UnknownOperationException", f"no such operation: {self.path}")
            return
        model_id, operation = unquote(parts[1]), parts[2]
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._error(400, "ValidationException", "request body is not JSON")
            return
        self.server.recorder.add(Call(operation, model_id, body))
        if operation == "invoke":
            self._invoke(model_id, body)
        elif operation == "converse":
            self._converse(body)
        elif operation == "converse-stream":
            self._converse_stream(body)
        else:
            self._error(404, "UnknownOperationException", f"no such operation: {operation}")

    def _invoke(self, model_id: str, body: dict[str, Any]) -> None:
        if not model_id.startswith(TITAN_V2_PREFIX):
            self._error(
                400, "ValidationException", f"this fake serves InvokeModel for Titan v2 only, not {model_id}"
            )
            return
        text, dimension = body.get("inputText"), body.get("dimensions", 1024)
        if not isinstance(text, str) or not text or dimension not in TITAN_V2_DIMENSIONS:
            self._error(400, "ValidationException", "inputText must be text and dimensions 256, 512 or 1024")
            return
        payload = {"embedding": embedding(text, dimension), "inputTextTokenCount": len(text.split())}
        self._send(200, json.dumps(payload).encode(), "application/json")

    @staticmethod
    def _valid_converse(body: dict[str, Any]) -> bool:
        messages = body.get("messages")
        return isinstance(messages, list) and bool(messages) and bool(messages[-1].get("content"))

    def _converse(self, body: dict[str, Any]) -> None:
        if not self._valid_converse(body):
            self._error(400, "ValidationException", "messages must not be empty")
            return
        payload = {
            "output": {"message": {"role": "assistant", "content": [{"text": answer_text(body)}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 10, "outputTokens": 10, "totalTokens": 20},
            "metrics": {"latencyMs": 1},
        }
        self._send(200, json.dumps(payload).encode(), "application/json")

    def _converse_stream(self, body: dict[str, Any]) -> None:
        if not self._valid_converse(body):
            self._error(400, "ValidationException", "messages must not be empty")
            return
        words = answer_text(body).split(" ")
        frames = [event_frame("messageStart", {"role": "assistant"})]
        frames += [
            event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": word + " "}})
            for word in words
        ]
        frames += [
            event_frame("contentBlockStop", {"contentBlockIndex": 0}),
            event_frame("messageStop", {"stopReason": "end_turn"}),
            event_frame(
                "metadata",
                {
                    "usage": {"inputTokens": 10, "outputTokens": len(words), "totalTokens": 10 + len(words)},
                    "metrics": {"latencyMs": 1},
                },
            ),
        ]
        self._send(200, b"".join(frames), "application/vnd.amazon.eventstream")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    recorder: Recorder


class FakeBedrock:
    """The fake on a free 127.0.0.1 port, served from a daemon thread until `close`."""

    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.recorder = Recorder()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def recorder(self) -> Recorder:
        return self._server.recorder

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeBedrock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
