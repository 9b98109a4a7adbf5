"""Events in the shapes AWS delivers them to a function, for the artifact smoke.

- SQS (event source mapping): https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html
  ("Example standard queue message event"). The records are built from messages really
  received from the queue, so their bodies are the S3 notifications S3 itself sent.
- API Gateway HTTP API, payload format 2.0:
  https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any


def sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One record of the SQS event, from a ReceiveMessage result (AttributeNames=All)."""
    attributes = {
        name: str(message.get("Attributes", {}).get(name, ""))
        for name in (
            "ApproximateReceiveCount",
            "SentTimestamp",
            "SenderId",
            "ApproximateFirstReceiveTimestamp",
        )
    }
    # The event spells message attributes in lower camel case, unlike ReceiveMessage.
    message_attributes = {
        name: {
            "stringValue": value.get("StringValue"),
            "binaryValue": value.get("BinaryValue"),
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value["DataType"],
        }
        for name, value in message.get("MessageAttributes", {}).items()
    }
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def http_api_event(
    method: str,
    path: str,
    *,
    api_id: str,
    region: str,
    account: str,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    query: str = "",
) -> dict[str, Any]:
    """An HTTP API (payload 2.0) request for route `$default`; header names arrive lower-cased."""
    domain = f"{api_id}.execute-api.{region}.amazonaws.com"
    all_headers = {
        "host": domain,
        "user-agent": "rag-platform-artifact-smoke",
        "x-forwarded-for": "203.0.113.10",
        "x-forwarded-proto": "https",
        "x-forwarded-port": "443",
        **{k.lower(): v for k, v in (headers or {}).items()},
    }
    if body is not None:
        all_headers["content-type"] = "application/json"
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": all_headers,
        "requestContext": {
            "accountId": account,
            "apiId": api_id,
            "domainName": domain,
            "domainPrefix": api_id,
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.10",
                "userAgent": all_headers["user-agent"],
            },
            "requestId": f"smoke-{uuid.uuid4().hex[:12]}",
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "body": json.dumps(body) if body is not None else None,
        "isBase64Encoded": False,
    }
