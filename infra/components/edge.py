"""Optional edge protection for the API: CloudFront with an AWS WAF web ACL.

WAF cannot be attached to an API Gateway HTTP API, only to REST APIs, CloudFront and
a few others (https://docs.aws.amazon.com/waf/latest/developerguide/how-aws-waf-works-resources.html),
so the ACL protects a CloudFront distribution in front of the API. CloudFront-scope
ACLs must be created in us-east-1, hence the extra provider.

The API stays reachable only through the distribution: CloudFront adds a secret origin
header (`ORIGIN_VERIFY_HEADER`) to every request it forwards, and the API function refuses
requests without it (`service.api.origin`). Disabling the default `execute-api` endpoint
would not do: without a custom domain on the HTTP API, that endpoint is CloudFront's only
way in.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.config import CustomDomainConfig
from service.contract import ORIGIN_VERIFY_HEADER

# AWS managed policy ids (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/using-managed-cache-policies.html).
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER_EXCEPT_HOST = "b689b0a8-53d0-40ab-baf2-68738e2966ac"
# Managed "SecurityHeadersPolicy": HSTS, nosniff, frame options, referrer policy
# (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/using-managed-response-headers-policies.html).
SECURITY_HEADERS = "67f7725c-6f97-4210-82d7-5512b31e9d03"
MANAGED_RULE_GROUPS = ("AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet")


@dataclass(frozen=True)
class ApiEdgeArgs:
    api_endpoint: pulumi.Input[str]
    # The value CloudFront sends in ORIGIN_VERIFY_HEADER (a generated secret).
    origin_verify_value: pulumi.Input[str]
    acl_name: str
    rate_per_five_minutes: int
    custom_domain: CustomDomainConfig | None
    tags: dict[str, str]


def _visibility(metric: str) -> aws.wafv2.WebAclVisibilityConfigArgs:
    return aws.wafv2.WebAclVisibilityConfigArgs(
        cloudwatch_metrics_enabled=True, metric_name=metric, sampled_requests_enabled=True
    )


def _rule_visibility(metric: str) -> aws.wafv2.WebAclRuleVisibilityConfigArgs:
    return aws.wafv2.WebAclRuleVisibilityConfigArgs(
        cloudwatch_metrics_enabled=True, metric_name=metric, sampled_requests_enabled=True
    )


def _rules(rate: int) -> list[aws.wafv2.WebAclRuleArgs]:
    managed = [
        aws.wafv2.WebAclRuleArgs(
            name=group,
            priority=i,
            override_action=aws.wafv2.WebAclRuleOverrideActionArgs(
                none=aws.wafv2.WebAclRuleOverrideActionNoneArgs()  # type: ignore[no-untyped-call]
            ),
            statement=aws.wafv2.WebAclRuleStatementArgs(
                managed_rule_group_statement=aws.wafv2.WebAclRuleStatementManagedRuleGroupStatementArgs(
                    vendor_name="AWS", name=group
                )
            ),
            visibility_config=_rule_visibility(group),
        )
        for i, group in enumerate(MANAGED_RULE_GROUPS)
    ]
    rate_rule = aws.wafv2.WebAclRuleArgs(
        name="rate-per-ip",
        priority=len(managed),
        action=aws.wafv2.WebAclRuleActionArgs(block=aws.wafv2.WebAclRuleActionBlockArgs()),
        statement=aws.wafv2.WebAclRuleStatementArgs(
            rate_based_statement=aws.wafv2.WebAclRuleStatementRateBasedStatementArgs(
                limit=rate, aggregate_key_type="IP"
            )
        ),
        visibility_config=_rule_visibility("rate-per-ip"),
    )
    return [*managed, rate_rule]


class ApiEdge(pulumi.ComponentResource):
    distribution: aws.cloudfront.Distribution
    web_acl: aws.wafv2.WebAcl
    url: pulumi.Output[str]

    def __init__(self, name: str, args: ApiEdgeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ragplatform:edge:ApiEdge", name, None, opts)
        us_east_1 = aws.Provider(
            f"{name}-us-east-1", region="us-east-1", opts=pulumi.ResourceOptions(parent=self)
        )
        self.web_acl = aws.wafv2.WebAcl(
            f"{name}-acl",
            name=args.acl_name,
            scope="CLOUDFRONT",
            default_action=aws.wafv2.WebAclDefaultActionArgs(allow=aws.wafv2.WebAclDefaultActionAllowArgs()),
            rules=_rules(args.rate_per_five_minutes),
            visibility_config=_visibility(args.acl_name),
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, provider=us_east_1),
        )
        origin_host = pulumi.Output.from_input(args.api_endpoint).apply(lambda u: u.removeprefix("https://"))
        domain = args.custom_domain
        self.distribution = aws.cloudfront.Distribution(
            f"{name}-cdn",
            enabled=True,
            comment=f"{args.acl_name}: WAF in front of the HTTP API",
            aliases=[domain.domain_name] if domain else None,
            origins=[
                aws.cloudfront.DistributionOriginArgs(
                    origin_id="api",
                    domain_name=origin_host,
                    custom_headers=[
                        aws.cloudfront.DistributionOriginCustomHeaderArgs(
                            name=ORIGIN_VERIFY_HEADER, value=args.origin_verify_value
                        )
                    ],
                    custom_origin_config=aws.cloudfront.DistributionOriginCustomOriginConfigArgs(
                        http_port=80,
                        https_port=443,
                        origin_protocol_policy="https-only",
                        origin_ssl_protocols=["TLSv1.2"],
                    ),
                )
            ],
            default_cache_behavior=aws.cloudfront.DistributionDefaultCacheBehaviorArgs(
                target_origin_id="api",
                viewer_protocol_policy="https-only",
                allowed_methods=["GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"],
                cached_methods=["GET", "HEAD"],
                cache_policy_id=CACHING_DISABLED,
                origin_request_policy_id=ALL_VIEWER_EXCEPT_HOST,
                response_headers_policy_id=SECURITY_HEADERS,
                compress=True,
            ),
            restrictions=aws.cloudfront.DistributionRestrictionsArgs(
                geo_restriction=aws.cloudfront.DistributionRestrictionsGeoRestrictionArgs(
                    restriction_type="none"
                )
            ),
            viewer_certificate=(
                aws.cloudfront.DistributionViewerCertificateArgs(
                    acm_certificate_arn=domain.certificate_arn,
                    ssl_support_method="sni-only",
                    minimum_protocol_version="TLSv1.2_2021",
                )
                if domain
                else aws.cloudfront.DistributionViewerCertificateArgs(cloudfront_default_certificate=True)
            ),
            web_acl_id=self.web_acl.arn,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.url = (
            pulumi.Output.from_input(f"https://{domain.domain_name}")
            if domain
            else self.distribution.domain_name.apply(lambda d: f"https://{d}")
        )
        self.register_outputs({"url": self.url})
