"""The search provisioner: a small VPC Lambda that `pulumi up` invokes once per change.

It runs as the domain's master user and applies the OpenSearch roles, role mappings and
the first index with the stack's replica count (`service.search.provision`). An
`aws.lambda_.Invocation` calls it from the deploy; its `triggers` hold a fingerprint of
everything it applies (security roles, mapping version, replicas, dimension, endpoint and
code), so a change to any of them re-runs it and an unchanged stack previews no change.
A failed provisioning (a raised error) fails the invocation and with it the deploy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.function import FunctionSpec, make_function


@dataclass(frozen=True)
class SearchProvisionerArgs:
    function: FunctionSpec
    fingerprint: pulumi.Input[str]


class SearchProvisioner(pulumi.ComponentResource):
    function: aws.lambda_.Function
    invocation: aws.lambda_.Invocation

    def __init__(
        self, name: str, args: SearchProvisionerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("ragplatform:search:SearchProvisioner", name, None, opts)
        self.function = make_function(name, args.function, self)
        fingerprint = pulumi.Output.from_input(args.fingerprint)
        self.invocation = aws.lambda_.Invocation(
            f"{name}-run",
            function_name=self.function.name,
            input=fingerprint.apply(lambda f: json.dumps({"fingerprint": f})),
            triggers={"fingerprint": fingerprint},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.function]),
        )
        self.register_outputs({"functionName": self.function.name, "result": self.invocation.result})
