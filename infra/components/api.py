"""The RAG API: a Lambda behind an API Gateway HTTP API, with throttling, access logs and API keys.

An HTTP API rather than a function URL: it gives stage throttling, access logs and a
custom domain without code, and it can sit behind CloudFront + WAF.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.function import FunctionSpec, make_function
from infra.config import CustomDomainConfig

# Access-log fields (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-logging-variables.html).
ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "ip": "$context.identity.sourceIp",
        "requestTime": "$context.requestTime",
        "httpMethod": "$context.httpMethod",
        "routeKey": "$context.routeKey",
        "status": "$context.status",
        "responseLength": "$context.responseLength",
        "integrationLatency": "$context.integrationLatency",
        "integrationError": "$context.integrationErrorMessage",
    }
)


@dataclass(frozen=True)
class RagApiArgs:
    function: FunctionSpec
    throttle_rate_limit: float
    throttle_burst_limit: int
    cors_origins: Sequence[str]
    custom_domain: CustomDomainConfig | None
    kms_key_arn: pulumi.Input[str]
    log_retention_days: int
    tags: dict[str, str]


class RagApi(pulumi.ComponentResource):
    function: aws.lambda_.Function
    http_api: aws.apigatewayv2.Api
    stage: aws.apigatewayv2.Stage
    url: pulumi.Output[str]

    def __init__(self, name: str, args: RagApiArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ragplatform:api:RagApi", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.function = make_function(name, args.function, self)
        self.http_api = aws.apigatewayv2.Api(
            f"{name}-http",
            name=args.function.function_name,
            protocol_type="HTTP",
            cors_configuration=(
                aws.apigatewayv2.ApiCorsConfigurationArgs(
                    allow_origins=list(args.cors_origins),
                    allow_methods=["GET", "POST", "OPTIONS"],
                    allow_headers=["content-type", "x-api-key", "x-request-id"],
                )
                if args.cors_origins
                else None
            ),
            tags=args.tags,
            opts=child,
        )
        integration = aws.apigatewayv2.Integration(
            f"{name}-integration",
            api_id=self.http_api.id,
            integration_type="AWS_PROXY",
            integration_uri=self.function.invoke_arn,
            payload_format_version="2.0",
            timeout_milliseconds=min(30_000, (args.function.timeout_seconds + 1) * 1000),
            opts=child,
        )
        aws.apigatewayv2.Route(
            f"{name}-route",
            api_id=self.http_api.id,
            route_key="$default",
            target=integration.id.apply(lambda i: f"integrations/{i}"),
            opts=child,
        )
        self.stage = self._stage(name, args)
        aws.lambda_.Permission(
            f"{name}-invoke",
            action="lambda:InvokeFunction",
            function=self.function.name,
            principal="apigateway.amazonaws.com",
            source_arn=self.http_api.execution_arn.apply(lambda a: f"{a}/*/*"),
            opts=child,
        )
        self.url = self.http_api.api_endpoint
        if args.custom_domain:
            self.url = self._custom_domain(name, args.custom_domain, args.tags)
        self.register_outputs({"url": self.url})

    def _stage(self, name: str, args: RagApiArgs) -> aws.apigatewayv2.Stage:
        child = pulumi.ResourceOptions(parent=self)
        access_logs = aws.cloudwatch.LogGroup(
            f"{name}-access-logs",
            name=f"/aws/apigateway/{args.function.function_name}",
            retention_in_days=args.log_retention_days,
            kms_key_id=args.kms_key_arn,
            tags=args.tags,
            opts=child,
        )
        return aws.apigatewayv2.Stage(
            f"{name}-stage",
            api_id=self.http_api.id,
            name="$default",
            auto_deploy=True,
            default_route_settings=aws.apigatewayv2.StageDefaultRouteSettingsArgs(
                throttling_rate_limit=args.throttle_rate_limit,
                throttling_burst_limit=args.throttle_burst_limit,
                detailed_metrics_enabled=True,
            ),
            access_log_settings=aws.apigatewayv2.StageAccessLogSettingsArgs(
                destination_arn=access_logs.arn, format=ACCESS_LOG_FORMAT
            ),
            tags=args.tags,
            opts=child,
        )

    def _custom_domain(
        self, name: str, domain: CustomDomainConfig, tags: dict[str, str]
    ) -> pulumi.Output[str]:
        child = pulumi.ResourceOptions(parent=self)
        custom = aws.apigatewayv2.DomainName(
            f"{name}-domain",
            domain_name=domain.domain_name,
            domain_name_configuration=aws.apigatewayv2.DomainNameDomainNameConfigurationArgs(
                certificate_arn=domain.certificate_arn, endpoint_type="REGIONAL", security_policy="TLS_1_2"
            ),
            tags=tags,
            opts=child,
        )
        aws.apigatewayv2.ApiMapping(
            f"{name}-mapping", api_id=self.http_api.id, domain_name=custom.id, stage=self.stage.id, opts=child
        )
        return pulumi.Output.from_input(f"https://{domain.domain_name}")
