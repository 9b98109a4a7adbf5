"""Lambda entry point for the ingest queue: Powertools batch processing with partial batch responses.

The local worker (`pipelines.worker`) calls this same `handler` with the same
event shape, so what runs on a laptop is what runs in Lambda.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from service.runtime import ingest_service
from service.settings import load_settings

# The variables are checked in the init phase: a function that lost one fails to start with
# an error naming it, instead of reporting every record of every batch as failed.
load_settings().require_serving()
logger = Logger()
processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord, lambda_context: LambdaContext) -> None:
    # Each record gets the time left when it starts: retries and large documents stay inside it.
    ingest_service().handle_message(record.body, remaining_ms=lambda_context.get_remaining_time_in_millis())


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
