"""The API as Lambda runs it: Mangum invoked with an API Gateway HTTP API (payload 2.0) event."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace
from typing import Any

from service.api.lambda_handler import build_handler
from service.api.logs import build_logger
from service.ingest.indexer import Indexer
from service.wiring import Container
from tests.factories import make_document


def gateway_event(
    method: str, path: str, body: dict[str, Any] | None = None, key: str | None = None
) -> dict[str, Any]:
    headers = {"content-type": "application/json", "host": "abc.execute-api.us-east-1.amazonaws.com"}
    if key:
        headers["x-api-key"] = key
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc",
            "domainName": "abc.execute-api.us-east-1.amazonaws.com",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.9",
                "userAgent": "test",
            },
            "requestId": "gw-req-42",
            "stage": "$default",
            "time": "24/Nov/2026:10:00:00 +0000",
            "timeEpoch": 1795000000000,
        },
        "body": json.dumps(body) if body is not None else None,
        "isBase64Encoded": False,
    }


def lambda_context() -> SimpleNamespace:
    return SimpleNamespace(
        function_name="rag-platform-staging-api",
        memory_limit_in_mb=1024,
        aws_request_id="lambda-req-1",
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:rag-platform-staging-api",
    )


def test_mangum_handler_answers_api_gateway_v2_events(container: Container, indexer: Indexer) -> None:
    # Given the handler built on a container of fakes, with one document indexed
    indexer.index(make_document("deploy.md", "Deploy to staging with make deploy STACK=staging."))
    logs = io.StringIO()
    handler = build_handler(
        container, logger=build_logger(service="api-lambda-test", stream=logs), process_logging=False
    )
    # When API Gateway delivers a health check and a question
    health = handler(gateway_event("GET", "/health"), lambda_context())
    answer = handler(
        gateway_event("POST", "/v1/query", {"question": "deploy to staging?"}, "test-key"), lambda_context()
    )
    refused = handler(gateway_event("POST", "/v1/query", {"question": "deploy?"}), lambda_context())
    # Then each gets the proxy response shape with its status and body
    assert health["statusCode"] == 200
    assert json.loads(health["body"])["status"] == "ok"
    assert answer["statusCode"] == 200
    assert json.loads(answer["body"])["citations"][0]["document_id"] == "deploy.md"
    assert refused["statusCode"] == 401
    # And API Gateway's request id is the request id, in the header and in the JSON logs
    assert answer["headers"]["x-request-id"] == "gw-req-42"
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    access = [line for line in lines if line["message"] == "request"]
    assert [(line["path"], line["status"], line["request_id"]) for line in access] == [
        ("/health", 200, "gw-req-42"),
        ("/v1/query", 200, "gw-req-42"),
        ("/v1/query", 401, "gw-req-42"),
    ]
    assert all(line["function_name"] == "rag-platform-staging-api" for line in access)
