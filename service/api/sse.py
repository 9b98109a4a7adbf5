"""Server-sent events framing (https://html.spec.whatwg.org/multipage/server-sent-events.html).

Each event is `event: <name>` and one `data:` line holding JSON, then a blank line.
JSON keeps a token that contains a newline on one `data:` line, so clients parse
every event with `JSON.parse`. The events of an answer are `token`... `citations`
`done`, or `error` if generation fails after the stream has started.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from aws_lambda_powertools import Logger

from service.query.service import StreamEvent

MEDIA_TYPE = "text/event-stream"
# Proxies (nginx and friends) must not buffer the stream, and nobody may cache it.
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def encode(event: str, data: object) -> bytes:
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event}\ndata: {payload}\n\n".encode()


def encode_stream(events: Iterable[StreamEvent], on_error: dict[str, object], log: Logger) -> Iterator[bytes]:
    """Frame `events`; if they fail midway the status line is long gone, so end with an `error` event."""
    try:
        for item in events:
            yield encode(item.event, item.data)
    except Exception:
        # The trace goes to the log only; the client gets the request id to quote.
        log.exception("answer stream failed")
        yield encode("error", on_error)
