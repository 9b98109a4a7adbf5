"""The Lambda handler refuses requests that bypass the edge before the app runs."""

from __future__ import annotations

import io
import json

from service.api.lambda_handler import build_handler
from service.api.logs import build_logger
from service.api.origin import OriginGuard
from service.contract import ORIGIN_VERIFY_HEADER
from service.wiring import Container
from tests.integration.test_api_lambda import gateway_event, lambda_context


def test_handler_answers_only_requests_carrying_the_origin_secret(container: Container) -> None:
    # Given the API handler of a stack whose edge sends the origin secret
    handler = build_handler(
        container,
        logger=build_logger(service="origin-test", stream=io.StringIO()),
        process_logging=False,
        origin_guard=OriginGuard(lambda force: "edge-secret"),
    )
    through_edge = gateway_event("GET", "/health")
    through_edge["headers"][ORIGIN_VERIFY_HEADER] = "edge-secret"
    # When one request comes through CloudFront and one straight to execute-api
    allowed = handler(through_edge, lambda_context())
    bypass = handler(gateway_event("GET", "/health"), lambda_context())
    # Then only the first reaches the app
    assert allowed["statusCode"] == 200
    assert json.loads(allowed["body"])["status"] == "ok"
    assert bypass["statusCode"] == 403
