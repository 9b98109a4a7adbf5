"""Alarms to an SNS topic, a CloudWatch dashboard and a monthly AWS Budget for one stack."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.config import ObservabilityConfig


@dataclass(frozen=True)
class ObservedResources:
    region: str
    account_id: pulumi.Input[str]
    ingest_queue_name: pulumi.Input[str]
    dead_letter_queue_name: pulumi.Input[str]
    ingester_function_name: pulumi.Input[str]
    api_function_name: pulumi.Input[str]
    http_api_id: pulumi.Input[str]
    # None when search is an external cluster (config search.provider: external): its health
    # is the operator's provider's to watch, and AWS/ES has no metrics for it.
    domain_name: pulumi.Input[str] | None


@dataclass(frozen=True)
class ObservabilityArgs:
    dashboard_name: str
    budget_name: str
    stack: str
    settings: ObservabilityConfig
    resources: ObservedResources
    kms_key_arn: pulumi.Input[str]
    tags: dict[str, str]


@dataclass(frozen=True)
class AlarmSpec:
    key: str
    description: str
    namespace: str
    metric: str
    dimensions: dict[str, pulumi.Input[str]]
    threshold: float
    comparison: str = "GreaterThanThreshold"
    statistic: str | None = "Maximum"
    extended_statistic: str | None = None
    period: int = 300
    evaluation_periods: int = 1
    treat_missing_data: str = "notBreaching"


def alarm_specs(settings: ObservabilityConfig, r: ObservedResources) -> list[AlarmSpec]:
    """Every alarm the stack raises; metric names from the AWS service docs cited inline."""
    sqs_dlq = {"QueueName": r.dead_letter_queue_name}
    ingester = {"FunctionName": r.ingester_function_name}
    api = {"ApiId": r.http_api_id, "Stage": "$default"}
    specs = [
        AlarmSpec(
            "dlq-not-empty",
            "Messages reached the dead-letter queue",
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            sqs_dlq,
            0,
            period=60,
        ),
        AlarmSpec(
            "ingester-errors",
            "Ingester invocations failed",
            "AWS/Lambda",
            "Errors",
            ingester,
            0,
            statistic="Sum",
        ),
        AlarmSpec(
            "ingester-throttles",
            "Ingester invocations throttled",
            "AWS/Lambda",
            "Throttles",
            ingester,
            0,
            statistic="Sum",
        ),
        AlarmSpec(
            "queue-oldest-message",
            "Ingest backlog is getting old",
            "AWS/SQS",
            "ApproximateAgeOfOldestMessage",
            {"QueueName": r.ingest_queue_name},
            settings.oldest_message_age_seconds,
        ),
        # HTTP API metric names (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-metrics.html).
        AlarmSpec(
            "api-5xx", "RAG API returned server errors", "AWS/ApiGateway", "5xx", api, 0, statistic="Sum"
        ),
        AlarmSpec(
            "api-p99-latency",
            "RAG API p99 latency above target",
            "AWS/ApiGateway",
            "Latency",
            api,
            settings.api_p99_latency_ms,
            statistic=None,
            extended_statistic="p99",
            evaluation_periods=3,
        ),
    ]
    if r.domain_name is None:
        return specs
    # OpenSearch metrics live in AWS/ES keyed by DomainName and ClientId (the account)
    # (https://docs.aws.amazon.com/opensearch-service/latest/developerguide/managedomains-cloudwatchmetrics.html).
    domain = {"DomainName": r.domain_name, "ClientId": r.account_id}
    return [
        *specs,
        AlarmSpec(
            "cluster-red", "Search cluster status red", "AWS/ES", "ClusterStatus.red", domain, 0, period=60
        ),
        AlarmSpec(
            "cluster-yellow",
            "Search cluster status yellow",
            "AWS/ES",
            "ClusterStatus.yellow",
            domain,
            0,
            period=60,
            evaluation_periods=5,
        ),
        AlarmSpec(
            "cluster-free-storage",
            "Search cluster free storage low",
            "AWS/ES",
            "FreeStorageSpace",
            domain,
            settings.free_storage_min_mb,
            comparison="LessThanThreshold",
            statistic="Minimum",
        ),
        AlarmSpec(
            "cluster-jvm-pressure",
            "Search cluster JVM memory pressure high",
            "AWS/ES",
            "JVMMemoryPressure",
            domain,
            settings.jvm_memory_pressure_percent,
            evaluation_periods=3,
        ),
    ]


def _dashboard_body(region: str, specs: list[AlarmSpec], dims: list[dict[str, str]]) -> str:
    widgets: list[dict[str, Any]] = []
    for i, (spec, dim) in enumerate(zip(specs, dims, strict=True)):
        metric: list[Any] = [spec.namespace, spec.metric]
        for key, value in dim.items():
            metric += [key, value]
        stat = spec.extended_statistic or spec.statistic or "Average"
        widgets.append(
            {
                "type": "metric",
                "x": (i % 3) * 8,
                "y": (i // 3) * 6,
                "width": 8,
                "height": 6,
                "properties": {
                    "title": spec.description,
                    "region": region,
                    "stat": stat,
                    "period": spec.period,
                    "metrics": [metric],
                },
            }
        )
    return json.dumps({"widgets": widgets})


class Observability(pulumi.ComponentResource):
    topic: aws.sns.Topic
    alarms: dict[str, aws.cloudwatch.MetricAlarm]
    dashboard: aws.cloudwatch.Dashboard
    dashboard_url: str

    def __init__(
        self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("ragplatform:observability:Observability", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.topic = aws.sns.Topic(
            f"{name}-alarms", kms_master_key_id=args.kms_key_arn, tags=args.tags, opts=child
        )
        aws.sns.TopicSubscription(
            f"{name}-email",
            topic=self.topic.arn,
            protocol="email",
            endpoint=args.settings.alarm_email,
            opts=child,
        )
        specs = alarm_specs(args.settings, args.resources)
        self.alarms = {spec.key: self._alarm(name, spec, args.tags) for spec in specs}
        resolved_dims = [pulumi.Output.all(**spec.dimensions) for spec in specs]
        region = args.resources.region
        self.dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=args.dashboard_name,
            dashboard_body=pulumi.Output.all(*resolved_dims).apply(
                lambda d: _dashboard_body(region, specs, d)
            ),
            opts=child,
        )
        self.dashboard_url = (
            f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
            f"#dashboards:name={args.dashboard_name}"
        )
        self._budget(name, args)
        self.register_outputs({"dashboardUrl": self.dashboard_url, "topicArn": self.topic.arn})

    def _alarm(self, name: str, spec: AlarmSpec, tags: dict[str, str]) -> aws.cloudwatch.MetricAlarm:
        return aws.cloudwatch.MetricAlarm(
            f"{name}-{spec.key}",
            alarm_description=spec.description,
            namespace=spec.namespace,
            metric_name=spec.metric,
            dimensions=spec.dimensions,
            statistic=spec.statistic,
            extended_statistic=spec.extended_statistic,
            period=spec.period,
            evaluation_periods=spec.evaluation_periods,
            threshold=spec.threshold,
            comparison_operator=spec.comparison,
            treat_missing_data=spec.treat_missing_data,
            alarm_actions=[self.topic.arn],
            ok_actions=[self.topic.arn],
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _budget(self, name: str, args: ObservabilityArgs) -> None:
        # Scoped to this stack by its cost-allocation tag; activate the `stack` tag once
        # in the Billing console (https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/activating-tags.html).
        notifications = [
            aws.budgets.BudgetNotificationArgs(
                comparison_operator="GREATER_THAN",
                threshold=args.settings.budget_alert_percent,
                threshold_type="PERCENTAGE",
                notification_type=kind,
                subscriber_email_addresses=[args.settings.alarm_email],
            )
            for kind in ("ACTUAL", "FORECASTED")
        ]
        aws.budgets.Budget(
            f"{name}-budget",
            name=args.budget_name,
            budget_type="COST",
            limit_amount=f"{args.settings.monthly_budget_usd:.2f}",
            limit_unit="USD",
            time_unit="MONTHLY",
            cost_filters=[
                aws.budgets.BudgetCostFilterArgs(name="TagKeyValue", values=[f"user:stack${args.stack}"])
            ],
            notifications=notifications,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
