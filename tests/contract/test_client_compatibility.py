"""The pinned Elasticsearch client speaks a REST version the CI server accepts.

elasticsearch-py N sends `application/vnd.elasticsearch+json; compatible-with=N` on every
request. Elasticsearch N serves N and, through REST API compatibility, N-1; anything else is
a 400 `media_type_header_exception`
(https://www.elastic.co/docs/reference/elasticsearch/rest-apis/compatibility). So a 9.x
client cannot talk to the 8.x server CI runs. The test captures the header the client
really sends (a stdlib HTTP server on a free port) and compares it with the server image
in `.github/workflows/ci.yml`, so changing either alone goes red here, not in CI.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from service.search.elastic import elasticsearch_client

CI_WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "ci.yml"
CONTRACT_JOB = "backend-contract"
_COMPATIBLE_WITH = re.compile(r"compatible-with=(\d+)")


def ci_elasticsearch_major() -> int:
    """The major version of the Elasticsearch service container the contract job runs."""
    workflow = yaml.safe_load(CI_WORKFLOW.read_text())
    image = str(workflow["jobs"][CONTRACT_JOB]["services"]["elasticsearch"]["image"])
    tag = image.rsplit(":", 1)[1]
    return int(tag.split(".")[0])


class _Recorder(BaseHTTPRequestHandler):
    """Answers like an Elasticsearch 8 root endpoint and remembers each request's headers."""

    seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        type(self).seen.append({name.lower(): value for name, value in self.headers.items()})
        body = json.dumps(
            {"version": {"number": "8.17.4", "build_flavor": "default"}, "tagline": "You Know, for Search"}
        ).encode()
        self.send_response(200)
        # elasticsearch-py refuses a server that does not say it is Elasticsearch.
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Type", "application/vnd.elasticsearch+json;compatible-with=8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[dict[str, str]]]]:
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.seen
    server.shutdown()
    server.server_close()


def test_ci_server_major_is_read_from_the_workflow() -> None:
    # The contract job runs a real Elasticsearch image with a numeric version tag
    assert ci_elasticsearch_major() >= 7


def test_the_es_client_negotiates_a_version_the_ci_server_accepts(
    recorder: tuple[str, list[dict[str, str]]],
) -> None:
    # Given the client the service builds, pointed at a recording server
    url, seen = recorder
    client = elasticsearch_client(url, None)

    # When it sends a request
    client.info()

    # Then its compatibility header names a REST version the CI server serves: its own or the one before
    accept = seen[0]["accept"]
    match = _COMPATIBLE_WITH.search(accept)
    client_major = int(match.group(1)) if match else None
    server_major = ci_elasticsearch_major()
    assert client_major in (server_major, server_major - 1), (
        f"elasticsearch-py sends {accept!r}; Elasticsearch {server_major} (the image in {CI_WORKFLOW.name}) "
        f"accepts compatible-with={server_major - 1} or {server_major} only"
    )


# What infra/tools/package.py builds the Lambda artifact from.
LAMBDA_LOCK = Path(__file__).resolve().parents[2] / "locks" / "runtime.txt"


def test_the_lambda_artifact_pins_a_client_the_ci_server_accepts() -> None:
    # Given the client version the Lambda artifact ships (infra/tools/package.py installs this lock)
    lines = [
        line.split()[0] for line in LAMBDA_LOCK.read_text().splitlines() if "==" in line and line[0] != "#"
    ]
    pins = dict(line.split("==", 1) for line in lines)
    lambda_major = int(pins["elasticsearch"].split(".")[0])

    # Then it speaks the same REST version as the client tested here, one the CI server serves
    assert lambda_major in (ci_elasticsearch_major(), ci_elasticsearch_major() - 1)
    assert pins["elastic-transport"].split(".")[0] == pins["elasticsearch"].split(".")[0]
