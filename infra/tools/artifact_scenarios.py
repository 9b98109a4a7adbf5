"""What the artifact smoke sends each function, by how the inventory triggers it, and what it checks.

- `sqs` (an event source mapping on a queue a bucket notifies): documents are put into
  the bucket so S3 itself (moto) notifies the queue; the received messages become an
  SQS event. One preliminary batch indexes a document; the main batch holds an
  `ObjectCreated` for a markdown file and a PDF, the `ObjectRemoved` of that first
  document, and a poison record. Checked: `batchItemFailures`, the ledger rows in
  DynamoDB, the documents in the engine, the dead letter and its reason.
- `http-api` (an API Gateway integration): HTTP API v2 events for /health, /ready, a
  search, a query, a streamed query, the documents list and a request without a key.
- `invocation` (the program invokes the function with a fixed input): that input.
- anything else: a cold start (import, init) only, reported as such.
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from infra.tools.artifact_cloud import NOTIFICATION, bucket_names, resources
from infra.tools.artifact_events import http_api_event, sqs_record
from infra.tools.artifact_functions import LambdaFunction, describe
from infra.tools.fake_bedrock import ANSWER_PREFIX
from infra.tools.offline import ACCOUNT_ID
from service.api.security_headers import FIXED_HEADERS
from service.contract import API_KEY_HEADER, ORIGIN_VERIFY_HEADER, REQUEST_ID_HEADER, Env
from service.ingest.ledger import Status

if TYPE_CHECKING:
    from infra.tools.artifact_smoke import Run, Smoke


DOCUMENTS = Path(__file__).with_name("smoke_documents")
POISON_BODY = '{"Records": [{"eventSource": "aws:s3", "s3": '  # cut short, as a broken producer would
POISON_REASON = "not JSON"
SEARCH_TERM = "quokka"
RECEIVE_SECONDS = 15


def store_api_keys(smoke: Smoke, functions: list[LambdaFunction]) -> str:
    """A fresh key in every secret a function reads its API keys from, as the operator would store it."""
    api_key = secrets.token_urlsafe(24)
    for secret_id in sorted(
        {
            str(fn.environment[Env.API_KEYS_SECRET_ARN])
            for fn in functions
            if Env.API_KEYS_SECRET_ARN in fn.environment
        }
    ):
        smoke.cloud.put_secret(secret_id, json.dumps([api_key]))
    return api_key


def store_origin_secrets(smoke: Smoke, functions: list[LambdaFunction]) -> dict[str, str]:
    """With the edge on, the value CloudFront sends in ORIGIN_VERIFY_HEADER, per function."""
    values: dict[str, str] = {}
    for fn in functions:
        secret_id = fn.environment.get(Env.ORIGIN_VERIFY_SECRET_ARN)
        if secret_id:
            values[fn.name] = secrets.token_urlsafe(24)
            smoke.cloud.put_secret(str(secret_id), values[fn.name])
    return values


def store_scoped_keys(smoke: Smoke, functions: list[LambdaFunction]) -> dict[str, str]:
    """Issue 15: the pepper in its secret, then a reader key and a revoked key in the keys table,
    written the operator's way (`ragctl keys`: the key store, not the API)."""
    from service.access import DEFAULT_WORKSPACE, Role
    from service.api.keys import new_key
    from service.api.keys_dynamodb import DynamoDbKeyStore

    keys: dict[str, str] = {}
    for fn in functions:
        table, pepper_arn = (
            fn.environment.get(Env.KEYS_TABLE),
            fn.environment.get(Env.API_KEY_PEPPER_SECRET_ARN),
        )
        if not table or not pepper_arn:
            continue
        pepper = secrets.token_urlsafe(36)
        smoke.cloud.put_secret(str(pepper_arn), pepper)
        store = DynamoDbKeyStore(smoke.cloud.client("dynamodb"), str(table))
        now = datetime.now(UTC)
        for name in ("scoped key", "revoked key"):
            plaintext, record = new_key(
                pepper.encode(),
                name=f"artifact smoke {name}",
                role=Role.READER,
                workspaces=[DEFAULT_WORKSPACE],
                now=now,
                expires_at=now + timedelta(hours=1),
            )
            store.create(record)
            keys[name] = plaintext
            if name == "revoked key":
                store.revoke(record.key_id, now)
    return keys


def run_scenarios(smoke: Smoke, functions: list[LambdaFunction]) -> None:
    state: dict[str, Any] = {
        "api_key": store_api_keys(smoke, functions),
        "scoped": store_scoped_keys(smoke, functions),
        "origin": store_origin_secrets(smoke, functions),
        "indexed": [],
    }
    for fn in functions:
        if fn.triggered_by("invocation"):
            for trigger in fn.triggered_by("invocation"):
                run = smoke.start(
                    fn, [{"name": "invocation", "event": json.loads(trigger.source)}], "invocation"
                )
                _expect_success(smoke, run, "invocation")
        if fn.triggered_by("sqs"):
            ingest_scenario(smoke, fn, state)
        if fn.triggered_by("http-api"):
            api_scenario(smoke, fn, state)
        if not fn.triggers:
            smoke.start(fn, [], "cold start only: no trigger the smoke knows")


def _expect_success(smoke: Smoke, run: Run, name: str) -> dict[str, Any] | None:
    if run.init_error is not None:
        return None
    outcome = run.invocation(name)
    if "error" in outcome:
        error = outcome["error"]
        smoke.check(
            run.function,
            f"{name}: returns",
            False,
            describe(error) + run.log_tail(),
        )
        return None
    smoke.check(run.function, f"{name}: returns", True)
    response: dict[str, Any] = outcome["response"]
    return response


# -- ingestion ---------------------------------------------------------------------------------


def _notifying_bucket(smoke: Smoke, queue_arn: str) -> tuple[str, str, str] | None:
    inventory = _inventory(smoke)
    for notification in resources(inventory, NOTIFICATION):
        for rule in notification["inputs"].get("queues", []):
            if rule["queueArn"] == queue_arn:
                bucket = bucket_names(inventory)[notification["inputs"]["bucket"]]
                return bucket, rule.get("filterPrefix", ""), rule.get("filterSuffix", "")
    return None


def _inventory(smoke: Smoke) -> dict[str, Any]:
    inventory: dict[str, Any] = smoke.cloud.inventory
    return inventory


def _receive(smoke: Smoke, queue_url: str, until: int, contains: list[str]) -> list[dict[str, Any]]:
    """Messages as the event source mapping receives them: at least `until`, including each of `contains`."""
    sqs = smoke.cloud.client("sqs")
    messages: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + RECEIVE_SECONDS
    while time.monotonic() < deadline:
        got = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            VisibilityTimeout=60,
        ).get("Messages", [])
        messages.update({m["MessageId"]: m for m in got})
        # S3 URL-encodes object keys in its notifications.
        bodies = unquote_plus(" ".join(m["Body"] for m in messages.values()))
        if len(messages) >= until and all(c in bodies for c in contains):
            break
    return list(messages.values())


def _acknowledge(smoke: Smoke, queue_url: str, messages: list[dict[str, Any]], failed: set[str]) -> None:
    """What the event source mapping does after a partial batch response: delete all but the failures."""
    sqs = smoke.cloud.client("sqs")
    for message in messages:
        if message["MessageId"] not in failed:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def _batch(
    smoke: Smoke,
    fn: LambdaFunction,
    *,
    queue_arn: str,
    queue_url: str,
    messages: list[dict[str, Any]],
    label: str,
) -> tuple[Run, set[str] | None]:
    event = {"Records": [sqs_record(m, queue_arn, smoke.region) for m in messages]}
    run = smoke.start(fn, [{"name": label, "event": event}], label)
    response = _expect_success(smoke, run, label)
    if response is None:
        return run, None
    failures = {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
    _acknowledge(smoke, queue_url, messages, failures)
    return run, failures


def ingest_scenario(smoke: Smoke, fn: LambdaFunction, state: dict[str, Any]) -> None:
    for trigger in fn.triggered_by("sqs"):
        queue_arn = trigger.source
        target = _notifying_bucket(smoke, queue_arn)
        if not smoke.check(
            fn, f"a bucket notifies {queue_arn}", target is not None, "no scenario for this queue"
        ):
            continue
        assert target is not None
        bucket, prefix, _suffix = target
        # Without it Lambda ignores `batchItemFailures` and deletes the whole batch: failures vanish
        # (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html).
        response_types = trigger.settings.get("functionResponseTypes") or []
        smoke.check(
            fn,
            "the event source mapping reports batch item failures",
            "ReportBatchItemFailures" in response_types,
            f"functionResponseTypes {response_types}",
        )
        s3, queue_url = smoke.cloud.client("s3"), smoke.cloud.queue_url(queue_arn)
        keys = {name: f"{prefix}artifact-smoke/{name}" for name in ("guide.md", "manual.pdf", "obsolete.md")}

        # A first batch: S3's notification (and its s3:TestEvent, if any) for one document.
        s3.put_object(Bucket=bucket, Key=keys["obsolete.md"], Body=(DOCUMENTS / "obsolete.md").read_bytes())
        first = _receive(smoke, queue_url, 1, [keys["obsolete.md"]])
        run, failures = _batch(
            smoke, fn, queue_arn=queue_arn, queue_url=queue_url, messages=first, label="first batch"
        )
        if failures is None:
            continue  # the function did not start or crashed; the check says why
        smoke.check(
            fn,
            "first batch: no batchItemFailures",
            failures == set(),
            f"failures {failures}\n{run.log_tail()}",
        )

        # The main batch: a markdown file and a PDF created, the first document removed, a poison record.
        s3.delete_object(Bucket=bucket, Key=keys["obsolete.md"])
        for name in ("guide.md", "manual.pdf"):
            s3.put_object(Bucket=bucket, Key=keys[name], Body=(DOCUMENTS / name).read_bytes())
        smoke.cloud.client("sqs").send_message(QueueUrl=queue_url, MessageBody=POISON_BODY)
        main = _receive(
            smoke, queue_url, 4, [keys["guide.md"], keys["manual.pdf"], "ObjectRemoved", POISON_BODY]
        )
        events = sorted(_event_names(m["Body"]) for m in main)
        smoke.check(
            fn, "main batch: 4 records from S3 and the producer", len(main) == 4, f"received {events}"
        )
        run, failures = _batch(
            smoke, fn, queue_arn=queue_arn, queue_url=queue_url, messages=main, label="main batch"
        )
        if failures is None:
            continue
        smoke.check(
            fn,
            "main batch: batchItemFailures is empty",
            failures == set(),
            f"failures {failures}\n{run.log_tail()}",
        )
        _check_ledger(smoke, fn, run, keys)
        _check_engine(smoke, fn, keys)
        _check_dead_letter(smoke, fn)
        calls = smoke.cloud.bedrock.recorder.operations()
        smoke.check(
            fn, "embeddings came from Bedrock InvokeModel", "invoke" in calls, f"Bedrock calls: {calls}"
        )
        state["indexed"] = [keys["guide.md"], keys["manual.pdf"]]


def _event_names(body: str) -> str:
    try:
        records = json.loads(body).get("Records", [])
        return ",".join(str(r.get("eventName")) for r in records) or "direct message"
    except (ValueError, AttributeError):
        return "poison"


def _check_ledger(smoke: Smoke, fn: LambdaFunction, run: Run, keys: dict[str, str]) -> None:
    from service.ingest.ledger_dynamodb import DynamoDbLedger

    table = fn.environment.get(Env.LEDGER_TABLE.value)
    if not smoke.check(fn, "has a ledger table", bool(table), f"{Env.LEDGER_TABLE} is not set"):
        return
    ledger = DynamoDbLedger(smoke.cloud.client("dynamodb"), str(table))
    expected = {
        keys["guide.md"]: Status.INDEXED,
        keys["manual.pdf"]: Status.INDEXED,
        keys["obsolete.md"]: Status.DELETED,
    }
    for document_id, status in expected.items():
        record = ledger.get(document_id)
        seen = record.status if record else None
        smoke.check(
            fn,
            f"ledger {table}: {document_id} is {status}",
            seen == status,
            f"ledger says {seen}\n{run.log_tail(6)}",
        )


def _check_engine(smoke: Smoke, fn: LambdaFunction, keys: dict[str, str]) -> None:
    alias = fn.environment.get(Env.SEARCH_INDEX_ALIAS.value)
    if not smoke.check(fn, "has a search index alias", bool(alias), f"{Env.SEARCH_INDEX_ALIAS} is not set"):
        return
    for name, present in (("guide.md", True), ("manual.pdf", True), ("obsolete.md", False)):
        chunks = _engine_chunks(smoke, str(alias), keys[name])
        smoke.check(
            fn,
            f"engine alias {alias}: {keys[name]} {'has chunks' if present else 'has no chunks'}",
            (chunks > 0) == present,
            f"{chunks} chunks",
        )


def _engine_chunks(smoke: Smoke, alias: str, document_id: str) -> int:
    import urllib.request

    body = json.dumps({"size": 100, "query": {"term": {"document_id": document_id}}}).encode()
    request = urllib.request.Request(  # noqa: S310 - the local engine's URL
        f"{smoke.cloud.search_url}/{alias}/_search", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return len(json.loads(response.read())["hits"]["hits"])
    except OSError:
        return -1


def _check_dead_letter(smoke: Smoke, fn: LambdaFunction) -> None:
    from pipelines.ops import peek

    dlq = fn.environment.get(Env.DEAD_LETTER_QUEUE_URL.value)
    if not smoke.check(fn, "has a dead-letter queue", bool(dlq), f"{Env.DEAD_LETTER_QUEUE_URL} is not set"):
        return
    # What an operator sees with `ragctl dlq`.
    letters = peek(smoke.cloud.client("sqs"), str(dlq))
    poison = [letter for letter in letters if letter.body == POISON_BODY]
    reason = (poison[0].reason or "") if poison else ""
    smoke.check(
        fn,
        "dead-letter queue holds the poison record with its reason",
        len(poison) == 1 and POISON_REASON in reason,
        f"{len(letters)} dead letters, poison {len(poison)}, reason {reason!r}",
    )


# -- the API -------------------------------------------------------------------------------------


def api_scenario(smoke: Smoke, fn: LambdaFunction, state: dict[str, Any]) -> None:
    integration = fn.triggered_by("http-api")[0]
    api_id = integration.source.replace("_", "-")[:10]
    # The events below are payload format 2.0, what the handler (Mangum) is built for.
    version = str(integration.settings.get("payloadFormatVersion", "1.0"))
    smoke.check(
        fn, "the integration sends payload format 2.0", version == "2.0", f"payloadFormatVersion {version}"
    )
    key = {API_KEY_HEADER: state["api_key"]}
    # With the edge on, every request arrives through CloudFront, which adds the origin secret.
    edge = {ORIGIN_VERIFY_HEADER: state["origin"][fn.name]} if fn.name in state["origin"] else {}

    def event(method: str, path: str, body: dict[str, Any] | None = None, **headers: str) -> dict[str, Any]:
        return http_api_event(
            method,
            path,
            api_id=api_id,
            region=smoke.region,
            account=ACCOUNT_ID,
            body=body,
            headers={**edge, **headers},
        )

    question = f"What does the {SEARCH_TERM} checklist promote?"
    # The engine here has no k-NN plugin; the requests ask for BM25, which exercises the
    # same client, index and alias. Hybrid and vector search run against real engines in CI.
    requests = {
        "health": event("GET", "/health"),
        "ready": event("GET", "/ready"),
        "search": event("POST", "/v1/search", {"query": SEARCH_TERM, "mode": "bm25"}, **key),
        "query": event("POST", "/v1/query", {"question": question, "mode": "bm25"}, **key),
        "stream": event("POST", "/v1/query/stream", {"question": question, "mode": "bm25"}, **key),
        "documents": event("GET", "/v1/documents", **key),
        "no key": event("POST", "/v1/search", {"query": SEARCH_TERM, "mode": "bm25"}),
    }
    # Issue 15: scoped keys are read from the keys table with the pepper from its secret.
    for name, scoped in state["scoped"].items():
        requests[name] = event(
            "POST", "/v1/search", {"query": SEARCH_TERM, "mode": "bm25"}, **{API_KEY_HEADER: scoped}
        )
    run = smoke.start(
        fn, [{"name": name, "event": value} for name, value in requests.items()], "api requests"
    )
    if run.init_error is not None:
        return
    responses = {}
    for name, request in requests.items():
        response = _expect_success(smoke, run, name)
        if response is None:
            continue
        responses[name] = response
        request_id = request["requestContext"]["requestId"]
        headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
        smoke.check(
            fn,
            f"{name}: API Gateway's request id comes back in {REQUEST_ID_HEADER}",
            headers.get(REQUEST_ID_HEADER) == request_id,
            f"headers {headers}",
        )
        expected = {k.lower(): v for k, v in FIXED_HEADERS.items()}
        if name != "stream":
            expected["content-type"] = "application/json"
        wrong = {k: headers.get(k) for k, v in expected.items() if headers.get(k) != v}
        smoke.check(fn, f"{name}: content type and security headers", not wrong, f"got {wrong}")
    _check_api(smoke, fn, run, responses, state)


def _status(response: dict[str, Any]) -> int:
    return int(response.get("statusCode", 0))


def _json(response: dict[str, Any]) -> Any:
    try:
        return json.loads(response.get("body") or "null")
    except ValueError:
        return None


def _check_api(
    smoke: Smoke, fn: LambdaFunction, run: Run, responses: dict[str, Any], state: dict[str, Any]
) -> None:
    def expect(name: str, status: int, ok: bool, what: str) -> None:
        response = responses.get(name)
        if response is None:
            return
        detail = f"status {_status(response)}, body {str(response.get('body'))[:400]}\n{run.log_tail(6)}"
        smoke.check(fn, f"{name}: {status} and {what}", _status(response) == status and ok, detail)

    indexed: list[str] = state["indexed"]
    smoke.check(
        fn,
        "documents were indexed through the pipeline first",
        bool(indexed),
        "no ingester scenario indexed anything: search and answers have nothing to find",
    )
    body = {name: _json(response) for name, response in responses.items()}
    content_type = {
        name: str({k.lower(): v for k, v in (r.get("headers") or {}).items()}.get("content-type", ""))
        for name, r in responses.items()
    }
    expect("health", 200, (body.get("health") or {}).get("status") == "ok", "status ok")
    expect("ready", 200, True, "the engine and the embedder answer")
    hits = {h["document_id"] for h in (body.get("search") or {}).get("hits", [])}
    expect(
        "search", 200, bool(indexed) and indexed[0] in hits, f"{indexed[:1]} among the hits {sorted(hits)}"
    )
    answer = body.get("query") or {}
    cited = {c["document_id"] for c in answer.get("citations", [])}
    expect(
        "query",
        200,
        str(answer.get("answer", "")).startswith(ANSWER_PREFIX) and bool(indexed) and indexed[0] in cited,
        f"Bedrock's answer citing {indexed[:1]}",
    )
    stream = str((responses.get("stream") or {}).get("body") or "")
    expect(
        "stream",
        200,
        content_type.get("stream", "").startswith("text/event-stream")
        and "event: token" in stream
        and ANSWER_PREFIX.split()[0] in stream,
        "an event stream of tokens from ConverseStream",
    )
    documents = json.dumps(body.get("documents"))
    expect("documents", 200, all(d in documents for d in indexed), f"the ledger lists {indexed}")
    expect(
        "no key",
        401,
        API_KEY_HEADER in str((body.get("no key") or {}).get("detail", "")),
        f"names the {API_KEY_HEADER} header",
    )
    if state["scoped"]:
        scoped_hits = {h["document_id"] for h in (body.get("scoped key") or {}).get("hits", [])}
        expect(
            "scoped key", 200, bool(indexed) and indexed[0] in scoped_hits, "a reader key finds the document"
        )
        refused = dict(body.get("revoked key") or {})
        refused.pop("request_id", None)
        missing = dict(body.get("no key") or {})
        missing.pop("request_id", None)
        expect("revoked key", 401, refused == missing, "the same body as no key at all")
    calls = smoke.cloud.bedrock.recorder.operations()
    smoke.check(
        fn,
        "answers were streamed through Bedrock ConverseStream",
        "converse-stream" in calls,
        f"Bedrock calls: {calls}",
    )
