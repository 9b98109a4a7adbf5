"""What a deploy role must be allowed to do for each resource type the program declares.

One data table: Pulumi type token -> the IAM requests `pulumi up` (create, update, tag,
read on refresh, delete) and pass-role make for one such resource. Actions and ARN formats
are from the Service Authorization Reference
(https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html).
`infra.policy.coverage` expands it over a stack's inventory; a type missing here fails the
check by name, so a resource added to the program is covered (or reported) without editing
the check itself.

ARN templates take `{region}`, `{account}`, `{name}` (the physical name) and `{id}`; `ref`
names the input that points at another resource (a bucket policy's bucket, a function's
role), whose name and id are used instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Types that make no AWS call: components, providers, random values.
NO_IAM_PREFIXES = ("ragplatform:", "pulumi:", "random:")


@dataclass(frozen=True)
class Need:
    actions: tuple[str, ...]
    arn: str
    ref: str | None = None
    # Condition keys IAM evaluates for these actions, as templates (e.g. the service a role is passed to).
    context: dict[str, str] = field(default_factory=dict)


def _ec2(kind: str, *actions: str, ref: str | None = None) -> Need:
    return Need(
        ("ec2:CreateTags", "ec2:DeleteTags", *actions),
        f"arn:aws:ec2:{{region}}:{{account}}:{kind}/{{id}}",
        ref=ref,
    )


_S3 = "arn:aws:s3:::{name}"
_APIS = "arn:aws:apigateway:{region}::/apis"
_LAMBDA = "arn:aws:lambda:{region}:{account}:function:{name}"
_ROLE = "arn:aws:iam::{account}:role/{name}"
_KEYS = "arn:aws:kms:{region}:{account}:key/*"
# A caller that attaches the stack key to a resource (Lambda env vars, DynamoDB, OpenSearch,
# Secrets Manager) needs these on the key (e.g. https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars-encryption.html).
_ENCRYPTS = Need(
    ("kms:CreateGrant", "kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"), _KEYS
)
_USER_POOL = "arn:aws:cognito-idp:{region}:{account}:userpool/{id}"
_VPC_READS = Need(("ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeVpcs"), "*")


def _bucket_child(*actions: str) -> tuple[Need, ...]:
    return (Need(actions, _S3, ref="bucket"),)


def _api_child(kind: str) -> tuple[Need, ...]:
    return (
        Need(("apigateway:POST",), f"{_APIS}/{{id}}/{kind}", ref="apiId"),
        Need(
            ("apigateway:DELETE", "apigateway:GET", "apigateway:PATCH"),
            f"{_APIS}/{{id}}/{kind}/*",
            ref="apiId",
        ),
    )


RESOURCE_ACTIONS: dict[str, tuple[Need, ...]] = {
    "aws:kms/key:Key": (
        Need(
            (
                "kms:CreateKey",
                "kms:DescribeKey",
                "kms:EnableKeyRotation",
                "kms:GetKeyPolicy",
                "kms:GetKeyRotationStatus",
                "kms:ListResourceTags",
                "kms:PutKeyPolicy",
                "kms:ScheduleKeyDeletion",
                "kms:TagResource",
                "kms:UntagResource",
                "kms:UpdateKeyDescription",
            ),
            "arn:aws:kms:{region}:{account}:key/{id}",
        ),
    ),
    "aws:kms/alias:Alias": (
        Need(
            ("kms:CreateAlias", "kms:DeleteAlias", "kms:UpdateAlias"), "arn:aws:kms:{region}:{account}:{name}"
        ),
        Need(
            ("kms:CreateAlias", "kms:DeleteAlias", "kms:UpdateAlias"),
            "arn:aws:kms:{region}:{account}:key/{id}",
            ref="targetKeyId",
        ),
    ),
    "aws:ec2/vpc:Vpc": (
        _ec2("vpc", "ec2:CreateVpc", "ec2:DeleteVpc", "ec2:ModifyVpcAttribute", "ec2:DescribeVpcAttribute"),
    ),
    "aws:ec2/subnet:Subnet": (
        _ec2("subnet", "ec2:CreateSubnet", "ec2:DeleteSubnet", "ec2:ModifySubnetAttribute"),
        _ec2("vpc", "ec2:CreateSubnet", ref="vpcId"),
    ),
    "aws:ec2/routeTable:RouteTable": (_ec2("route-table", "ec2:CreateRouteTable", "ec2:DeleteRouteTable"),),
    "aws:ec2/routeTableAssociation:RouteTableAssociation": (
        _ec2("route-table", "ec2:AssociateRouteTable", "ec2:DisassociateRouteTable", ref="routeTableId"),
        _ec2("subnet", "ec2:AssociateRouteTable", ref="subnetId"),
    ),
    "aws:ec2/route:Route": (
        _ec2("route-table", "ec2:CreateRoute", "ec2:DeleteRoute", "ec2:ReplaceRoute", ref="routeTableId"),
    ),
    "aws:ec2/securityGroup:SecurityGroup": (
        _ec2(
            "security-group",
            "ec2:AuthorizeSecurityGroupEgress",
            "ec2:CreateSecurityGroup",
            "ec2:DeleteSecurityGroup",
            "ec2:RevokeSecurityGroupEgress",
        ),
        _ec2("vpc", "ec2:CreateSecurityGroup", ref="vpcId"),
    ),
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": (
        _ec2("security-group", "ec2:RevokeSecurityGroupEgress", "ec2:RevokeSecurityGroupIngress"),
    ),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": (
        _ec2(
            "security-group",
            "ec2:AuthorizeSecurityGroupEgress",
            "ec2:ModifySecurityGroupRules",
            "ec2:RevokeSecurityGroupEgress",
            ref="securityGroupId",
        ),
    ),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": (
        _ec2(
            "security-group",
            "ec2:AuthorizeSecurityGroupIngress",
            "ec2:ModifySecurityGroupRules",
            "ec2:RevokeSecurityGroupIngress",
            ref="securityGroupId",
        ),
    ),
    "aws:ec2/vpcEndpoint:VpcEndpoint": (
        _ec2("vpc-endpoint", "ec2:CreateVpcEndpoint", "ec2:DeleteVpcEndpoints", "ec2:ModifyVpcEndpoint"),
        _ec2("vpc", "ec2:CreateVpcEndpoint", ref="vpcId"),
    ),
    "aws:ec2/flowLog:FlowLog": (
        _ec2("vpc-flow-log", "ec2:CreateFlowLogs", "ec2:DeleteFlowLogs"),
        Need(
            ("iam:PassRole",),
            _ROLE,
            ref="iamRoleArn",
            context={"iam:PassedToService": "vpc-flow-logs.amazonaws.com"},
        ),
    ),
    "aws:ec2/eip:Eip": (_ec2("elastic-ip", "ec2:AllocateAddress", "ec2:ReleaseAddress"),),
    "aws:ec2/internetGateway:InternetGateway": (
        _ec2(
            "internet-gateway",
            "ec2:AttachInternetGateway",
            "ec2:CreateInternetGateway",
            "ec2:DeleteInternetGateway",
            "ec2:DetachInternetGateway",
        ),
    ),
    "aws:ec2/natGateway:NatGateway": (_ec2("natgateway", "ec2:CreateNatGateway", "ec2:DeleteNatGateway"),),
    "aws:iam/role:Role": (
        Need(
            (
                "iam:CreateRole",
                "iam:DeleteRole",
                "iam:GetRole",
                "iam:ListAttachedRolePolicies",
                "iam:ListRolePolicies",
                "iam:PutRolePermissionsBoundary",
                "iam:TagRole",
                "iam:UntagRole",
                "iam:UpdateAssumeRolePolicy",
                "iam:UpdateRole",
            ),
            _ROLE,
            context={"iam:PermissionsBoundary": "{boundary}"},
        ),
    ),
    "aws:iam/rolePolicy:RolePolicy": (
        Need(
            ("iam:DeleteRolePolicy", "iam:GetRolePolicy", "iam:PutRolePolicy"),
            _ROLE,
            ref="role",
            context={"iam:PermissionsBoundary": "{boundary}"},
        ),
    ),
    "aws:lambda/function:Function": (
        Need(
            (
                "lambda:CreateFunction",
                "lambda:DeleteFunction",
                "lambda:DeleteFunctionConcurrency",
                "lambda:GetFunction",
                "lambda:GetFunctionCodeSigningConfig",
                "lambda:GetFunctionConfiguration",
                "lambda:ListVersionsByFunction",
                "lambda:PutFunctionConcurrency",
                "lambda:TagResource",
                "lambda:UntagResource",
                "lambda:UpdateFunctionCode",
                "lambda:UpdateFunctionConfiguration",
            ),
            _LAMBDA,
        ),
        Need(("iam:PassRole",), _ROLE, ref="role", context={"iam:PassedToService": "lambda.amazonaws.com"}),
        _VPC_READS,
        _ENCRYPTS,
    ),
    "aws:lambda/permission:Permission": (
        Need(
            ("lambda:AddPermission", "lambda:GetPolicy", "lambda:RemovePermission"), _LAMBDA, ref="function"
        ),
    ),
    "aws:lambda/eventSourceMapping:EventSourceMapping": (
        Need(
            (
                "lambda:CreateEventSourceMapping",
                "lambda:DeleteEventSourceMapping",
                "lambda:GetEventSourceMapping",
                "lambda:UpdateEventSourceMapping",
            ),
            # The mapping's own ARN holds a UUID; IAM scopes it by the function it feeds.
            "arn:aws:lambda:{region}:{account}:event-source-mapping:*",
            ref="functionName",
            context={"lambda:FunctionArn": _LAMBDA},
        ),
    ),
    "aws:lambda/invocation:Invocation": (Need(("lambda:InvokeFunction",), _LAMBDA, ref="functionName"),),
    "aws:cloudwatch/logGroup:LogGroup": (
        Need(
            (
                "logs:AssociateKmsKey",
                "logs:CreateLogGroup",
                "logs:DeleteLogGroup",
                "logs:DeleteRetentionPolicy",
                "logs:DisassociateKmsKey",
                "logs:ListTagsForResource",
                "logs:PutRetentionPolicy",
                "logs:TagResource",
                "logs:UntagResource",
            ),
            "arn:aws:logs:{region}:{account}:log-group:{name}",
        ),
        Need(("logs:DescribeLogGroups",), "*"),
    ),
    "aws:cloudwatch/logResourcePolicy:LogResourcePolicy": (
        Need(("logs:DeleteResourcePolicy", "logs:DescribeResourcePolicies", "logs:PutResourcePolicy"), "*"),
    ),
    "aws:cloudwatch/metricAlarm:MetricAlarm": (
        Need(
            (
                "cloudwatch:DeleteAlarms",
                "cloudwatch:ListTagsForResource",
                "cloudwatch:PutMetricAlarm",
                "cloudwatch:TagResource",
                "cloudwatch:UntagResource",
            ),
            "arn:aws:cloudwatch:{region}:{account}:alarm:{name}",
        ),
        Need(("cloudwatch:DescribeAlarms",), "*"),
    ),
    "aws:cloudwatch/dashboard:Dashboard": (
        Need(
            ("cloudwatch:DeleteDashboards", "cloudwatch:GetDashboard", "cloudwatch:PutDashboard"),
            "arn:aws:cloudwatch::{account}:dashboard/{name}",
        ),
    ),
    "aws:budgets/budget:Budget": (
        Need(
            ("budgets:ModifyBudget", "budgets:TagResource", "budgets:UntagResource", "budgets:ViewBudget"),
            "arn:aws:budgets::{account}:budget/{name}",
        ),
    ),
    "aws:sns/topic:Topic": (
        Need(
            (
                "sns:CreateTopic",
                "sns:DeleteTopic",
                "sns:GetTopicAttributes",
                "sns:ListTagsForResource",
                "sns:SetTopicAttributes",
                "sns:TagResource",
                "sns:UntagResource",
            ),
            "arn:aws:sns:{region}:{account}:{name}",
        ),
        _ENCRYPTS,
    ),
    "aws:sns/topicSubscription:TopicSubscription": (
        Need(
            (
                "sns:GetSubscriptionAttributes",
                "sns:SetSubscriptionAttributes",
                "sns:Subscribe",
                "sns:Unsubscribe",
            ),
            "arn:aws:sns:{region}:{account}:{name}",
            ref="topic",
        ),
    ),
    "aws:sqs/queue:Queue": (
        Need(
            (
                "sqs:CreateQueue",
                "sqs:DeleteQueue",
                "sqs:GetQueueAttributes",
                "sqs:ListQueueTags",
                "sqs:SetQueueAttributes",
                "sqs:TagQueue",
                "sqs:UntagQueue",
            ),
            "arn:aws:sqs:{region}:{account}:{name}",
        ),
        _ENCRYPTS,
    ),
    "aws:sqs/queuePolicy:QueuePolicy": (
        Need(
            ("sqs:GetQueueAttributes", "sqs:SetQueueAttributes"),
            "arn:aws:sqs:{region}:{account}:{name}",
            ref="queueUrl",
        ),
    ),
    "aws:sqs/redriveAllowPolicy:RedriveAllowPolicy": (
        Need(
            ("sqs:GetQueueAttributes", "sqs:SetQueueAttributes"),
            "arn:aws:sqs:{region}:{account}:{name}",
            ref="queueUrl",
        ),
    ),
    # Issue 15: the optional Cognito user pool. Pools are named by id and tagged; CreateUserPool
    # takes no resource, only the request's tags; clients and groups act on their pool's ARN
    # (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoncognitouserpools.html).
    "aws:cognito/userPool:UserPool": (
        Need(("cognito-idp:CreateUserPool",), "*"),
        Need(
            (
                "cognito-idp:DeleteUserPool",
                "cognito-idp:DescribeUserPool",
                "cognito-idp:GetUserPoolMfaConfig",
                "cognito-idp:ListTagsForResource",
                "cognito-idp:SetUserPoolMfaConfig",
                "cognito-idp:TagResource",
                "cognito-idp:UntagResource",
                "cognito-idp:UpdateUserPool",
            ),
            _USER_POOL,
        ),
    ),
    "aws:cognito/userPoolClient:UserPoolClient": (
        Need(
            (
                "cognito-idp:CreateUserPoolClient",
                "cognito-idp:DeleteUserPoolClient",
                "cognito-idp:DescribeUserPoolClient",
                "cognito-idp:UpdateUserPoolClient",
            ),
            _USER_POOL,
            ref="userPoolId",
        ),
    ),
    # The hosted sign-in's prefix domain: created, updated and deleted on its pool's ARN;
    # DescribeUserPoolDomain takes the domain name and authorises on "*" only (the service
    # authorization reference lists no resource type for it).
    "aws:cognito/userPoolDomain:UserPoolDomain": (
        Need(
            (
                "cognito-idp:CreateUserPoolDomain",
                "cognito-idp:DeleteUserPoolDomain",
                "cognito-idp:UpdateUserPoolDomain",
            ),
            _USER_POOL,
            ref="userPoolId",
        ),
        Need(("cognito-idp:DescribeUserPoolDomain",), "*"),
    ),
    "aws:cognito/userGroup:UserGroup": (
        Need(
            (
                "cognito-idp:CreateGroup",
                "cognito-idp:DeleteGroup",
                "cognito-idp:GetGroup",
                "cognito-idp:UpdateGroup",
            ),
            _USER_POOL,
            ref="userPoolId",
        ),
    ),
    "aws:dynamodb/table:Table": (
        Need(
            (
                "dynamodb:CreateTable",
                "dynamodb:DeleteTable",
                "dynamodb:DescribeContinuousBackups",
                "dynamodb:DescribeTable",
                "dynamodb:DescribeTimeToLive",
                "dynamodb:ListTagsOfResource",
                "dynamodb:TagResource",
                "dynamodb:UntagResource",
                "dynamodb:UpdateContinuousBackups",
                "dynamodb:UpdateTable",
            ),
            "arn:aws:dynamodb:{region}:{account}:table/{name}",
        ),
        _ENCRYPTS,
    ),
    "aws:s3/bucket:Bucket": (
        Need(
            (
                "s3:CreateBucket",
                "s3:DeleteBucket",
                "s3:GetBucketLocation",
                "s3:GetBucketTagging",
                "s3:PutBucketTagging",
            ),
            _S3,
        ),
        # forceDestroy lists and empties the bucket before deleting it.
        Need(("s3:ListBucket", "s3:ListBucketVersions"), _S3),
        Need(("s3:DeleteObject", "s3:DeleteObjectVersion"), _S3 + "/*"),
    ),
    "aws:s3/bucketPolicy:BucketPolicy": _bucket_child(
        "s3:DeleteBucketPolicy", "s3:GetBucketPolicy", "s3:PutBucketPolicy"
    ),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": _bucket_child(
        "s3:GetBucketPublicAccessBlock", "s3:PutBucketPublicAccessBlock"
    ),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": _bucket_child(
        "s3:GetEncryptionConfiguration", "s3:PutEncryptionConfiguration"
    ),
    "aws:s3/bucketVersioning:BucketVersioning": _bucket_child(
        "s3:GetBucketVersioning", "s3:PutBucketVersioning"
    ),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": _bucket_child(
        "s3:GetLifecycleConfiguration", "s3:PutLifecycleConfiguration"
    ),
    "aws:s3/bucketNotification:BucketNotification": _bucket_child(
        "s3:GetBucketNotification", "s3:PutBucketNotification"
    ),
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": _bucket_child(
        "s3:GetBucketOwnershipControls", "s3:PutBucketOwnershipControls"
    ),
    "aws:opensearch/domain:Domain": (
        Need(
            (
                "es:AddTags",
                "es:CreateDomain",
                "es:DeleteDomain",
                "es:DescribeDomain",
                "es:DescribeDomainConfig",
                "es:ListTags",
                "es:RemoveTags",
                "es:UpdateDomainConfig",
            ),
            "arn:aws:es:{region}:{account}:domain/{name}",
        ),
        Need(
            ("iam:CreateServiceLinkedRole",),
            "arn:aws:iam::{account}:role/aws-service-role/opensearchservice.amazonaws.com/"
            "AWSServiceRoleForAmazonOpenSearchService",
            context={"iam:AWSServiceName": "opensearchservice.amazonaws.com"},
        ),
        _VPC_READS,
        _ENCRYPTS,
    ),
    "aws:secretsmanager/secret:Secret": (
        Need(
            (
                "secretsmanager:CreateSecret",
                "secretsmanager:DeleteSecret",
                "secretsmanager:DescribeSecret",
                "secretsmanager:GetResourcePolicy",
                "secretsmanager:TagResource",
                "secretsmanager:UntagResource",
                "secretsmanager:UpdateSecret",
            ),
            "arn:aws:secretsmanager:{region}:{account}:secret:{name}-AbCdEf",
        ),
        _ENCRYPTS,
    ),
    "aws:secretsmanager/secretVersion:SecretVersion": (
        Need(
            (
                "secretsmanager:GetSecretValue",
                "secretsmanager:PutSecretValue",
                "secretsmanager:UpdateSecretVersionStage",
            ),
            "arn:aws:secretsmanager:{region}:{account}:secret:{name}-AbCdEf",
            ref="secretId",
        ),
        _ENCRYPTS,
    ),
    "aws:apigatewayv2/api:Api": (
        Need(("apigateway:POST",), _APIS),
        Need(("apigateway:DELETE", "apigateway:GET", "apigateway:PATCH"), _APIS + "/{id}"),
        Need(("apigateway:DELETE", "apigateway:POST"), "arn:aws:apigateway:{region}::/tags/*"),
    ),
    "aws:apigatewayv2/integration:Integration": _api_child("integrations"),
    "aws:apigatewayv2/route:Route": _api_child("routes"),
    "aws:apigatewayv2/stage:Stage": (
        *_api_child("stages"),
        # Access logging: the caller needs CloudWatch Logs' vended-log delivery actions, which
        # take no resource (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-logging.html).
        Need(
            (
                "logs:CreateLogDelivery",
                "logs:DeleteLogDelivery",
                "logs:DescribeResourcePolicies",
                "logs:GetLogDelivery",
                "logs:ListLogDeliveries",
                "logs:PutResourcePolicy",
                "logs:UpdateLogDelivery",
            ),
            "*",
        ),
    ),
    "aws:apigatewayv2/domainName:DomainName": (
        Need(("apigateway:POST",), "arn:aws:apigateway:{region}::/domainnames"),
        Need(
            ("apigateway:DELETE", "apigateway:GET", "apigateway:PATCH"),
            "arn:aws:apigateway:{region}::/domainnames/{name}",
        ),
    ),
    "aws:apigatewayv2/apiMapping:ApiMapping": (
        Need(
            ("apigateway:DELETE", "apigateway:GET", "apigateway:POST"),
            "arn:aws:apigateway:{region}::/domainnames/*",
        ),
    ),
    "aws:cloudfront/distribution:Distribution": (
        Need(
            (
                "cloudfront:CreateDistribution",
                "cloudfront:DeleteDistribution",
                "cloudfront:GetDistribution",
                "cloudfront:ListTagsForResource",
                "cloudfront:TagResource",
                "cloudfront:UntagResource",
                "cloudfront:UpdateDistribution",
            ),
            "arn:aws:cloudfront::{account}:distribution/{id}",
        ),
        # Attaching the web ACL: CloudFront checks the caller may read it.
        Need(
            ("wafv2:GetWebACL",), "arn:aws:wafv2:{region}:{account}:global/webacl/{name}/{id}", ref="webAclId"
        ),
    ),
    "aws:wafv2/webAcl:WebAcl": (
        Need(
            (
                "wafv2:CreateWebACL",
                "wafv2:DeleteWebACL",
                "wafv2:GetWebACL",
                "wafv2:ListTagsForResource",
                "wafv2:TagResource",
                "wafv2:UntagResource",
                "wafv2:UpdateWebACL",
            ),
            "arn:aws:wafv2:{region}:{account}:global/webacl/{name}/{id}",
        ),
    ),
}
