"""Lambda entry point that provisions the search cluster during `pulumi up`.

Invoked by the program's `aws.lambda_.Invocation` from inside the VPC. On the stack's
OpenSearch Service domain it runs as the master user and applies roles, role mappings and
the first index (`service.search.provision`). On an external cluster (config
`search.provider: external`) it holds only the operator's credentials, so it creates the
first index behind the alias and checks its vector size (`service.search.external_provision`).
A raised error fails the invocation and with it the deploy, naming the cause.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from service.search.opensearch import aws_service, opensearch_client
from service.search.provision import OpenSearchProvisionTarget, ProvisionPlan, provision
from service.settings import get_settings

logger = Logger()


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    if not settings.search_endpoint:
        raise ValueError("SEARCH_ENDPOINT is required to provision the search domain")
    endpoint = settings.search_endpoint
    host = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}").hostname or ""
    # A domain always gets its roles mapped: an AWS host, or any role ARN set, takes that path
    # (and fails naming a missing ARN); only a cluster outside AWS without them is external.
    roles = settings.search_writer_role_arn or settings.search_reader_role_arn
    if aws_service(host) is None and not roles:
        from service.search.external_provision import provision_external
        from service.wiring import resolve_secrets

        report = provision_external(resolve_secrets(settings))
    else:
        plan = ProvisionPlan.from_settings(settings)
        target = OpenSearchProvisionTarget(opensearch_client(endpoint, settings.aws_region))
        report = provision(target, plan).as_dict()
    logger.info("search provisioned", extra={"report": report, "trigger": event.get("fingerprint")})
    return report
