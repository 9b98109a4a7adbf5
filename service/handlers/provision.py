"""Lambda entry point that provisions the search domain during `pulumi up`.

Invoked by the program's `aws.lambda_.Invocation` from inside the VPC, as the domain's
master user. A raised error fails the invocation and with it the deploy, naming the cause.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from service.search.opensearch import opensearch_client
from service.search.provision import OpenSearchProvisionTarget, ProvisionPlan, provision
from service.settings import get_settings

logger = Logger()


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    if not settings.search_endpoint:
        raise ValueError("SEARCH_ENDPOINT is required to provision the search domain")
    plan = ProvisionPlan.from_settings(settings)
    target = OpenSearchProvisionTarget(opensearch_client(settings.search_endpoint, settings.aws_region))
    report = provision(target, plan).as_dict()
    logger.info("search domain provisioned", extra={"report": report, "trigger": event.get("fingerprint")})
    return report
