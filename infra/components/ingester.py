"""The ingester Lambda and its SQS trigger, throttled to protect the cluster and Bedrock quota."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra.components.function import FunctionSpec, make_function


@dataclass(frozen=True)
class IngesterArgs:
    function: FunctionSpec
    queue_arn: pulumi.Input[str]
    queue_visibility_timeout_seconds: int
    batch_size: int
    max_batching_window_seconds: int
    max_concurrency: int
    # The trigger starts only after these (the search provisioner): no message is taken
    # from the queue before the index and the ingester's OpenSearch role exist.
    start_after: Sequence[pulumi.Resource] = field(default_factory=tuple)


class Ingester(pulumi.ComponentResource):
    function: aws.lambda_.Function
    event_source: aws.lambda_.EventSourceMapping

    def __init__(self, name: str, args: IngesterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        # Validated in StackConfig too; repeated here because the component can be
        # reused with other args. Lambda refuses the trigger otherwise
        # (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html).
        if args.function.timeout_seconds >= args.queue_visibility_timeout_seconds:
            raise ValueError(
                f"ingester timeout {args.function.timeout_seconds}s must be below the queue visibility "
                f"timeout {args.queue_visibility_timeout_seconds}s"
            )
        super().__init__("ragplatform:ingest:Ingester", name, None, opts)
        self.function = make_function(name, args.function, self)
        self.event_source = aws.lambda_.EventSourceMapping(
            f"{name}-sqs",
            event_source_arn=args.queue_arn,
            function_name=self.function.arn,
            batch_size=args.batch_size,
            maximum_batching_window_in_seconds=args.max_batching_window_seconds,
            # Partial batch responses: only failed records return to the queue
            # (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html).
            function_response_types=["ReportBatchItemFailures"],
            # Caps concurrent invocations from this queue, so a burst of uploads cannot
            # overload the search cluster or the Bedrock embedding quota.
            scaling_config=aws.lambda_.EventSourceMappingScalingConfigArgs(
                maximum_concurrency=args.max_concurrency
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.start_after)),
        )
        self.register_outputs({"functionName": self.function.name})
