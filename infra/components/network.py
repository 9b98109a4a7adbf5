"""The VPC: private subnets, VPC endpoints for every AWS API the Lambdas call, optional NAT."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network

import pulumi
import pulumi_aws as aws

from infra.iam import Grant, permissions_boundary, policy_document, service_trust

# Interface endpoints (PrivateLink) every stack's functions need without a NAT: queues,
# secrets, logs, and X-Ray for active tracing; the program adds Bedrock's when it calls
# Bedrock (`NetworkArgs.interface_services`). S3 and DynamoDB use free gateway endpoints
# (https://docs.aws.amazon.com/vpc/latest/privatelink/gateway-endpoints.html).
INTERFACE_SERVICES = ("sqs", "secretsmanager", "logs", "xray")
GATEWAY_SERVICES = ("s3", "dynamodb")
HTTPS = 443


@dataclass(frozen=True)
class NetworkArgs:
    cidr: IPv4Network
    az_count: int
    nat_gateway: bool
    region: str
    flow_log_group_name: str
    # Explicit, under the project prefix: the deploy roles may create only such roles.
    flow_log_role_name: str
    flow_log_retention_days: int
    kms_key_arn: pulumi.Input[str]
    tags: dict[str, str]
    # Interface endpoints of the stack, `INTERFACE_SERVICES` and whatever its providers add.
    interface_services: tuple[str, ...] = INTERFACE_SERVICES
    # TCP ports the functions may reach through the NAT gateway (the endpoints outside AWS).
    internet_ports: tuple[int, ...] = (HTTPS,)


class Network(pulumi.ComponentResource):
    vpc: aws.ec2.Vpc
    private_subnets: list[aws.ec2.Subnet]
    lambda_security_group: aws.ec2.SecurityGroup
    interface_endpoints: dict[str, aws.ec2.VpcEndpoint]
    gateway_endpoints: dict[str, aws.ec2.VpcEndpoint]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ragplatform:network:Network", name, None, opts)
        self._name, self._args = name, args
        child = pulumi.ResourceOptions(parent=self)
        self.vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=str(args.cidr),
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={**args.tags, "Name": f"{name}-vpc"},
            opts=child,
        )
        # The default security group is locked down so nothing lands in it by accident.
        aws.ec2.DefaultSecurityGroup(f"{name}-default-sg", vpc_id=self.vpc.id, tags=args.tags, opts=child)
        zones = aws.get_availability_zones_output(state="available")
        subnets = list(args.cidr.subnets(new_prefix=min(args.cidr.prefixlen + 4, 28)))
        self.private_subnets = [
            aws.ec2.Subnet(
                f"{name}-private-{i}",
                vpc_id=self.vpc.id,
                cidr_block=str(subnets[i]),
                availability_zone=zones.names[i],
                map_public_ip_on_launch=False,
                tags={**args.tags, "Name": f"{name}-private-{i}", "tier": "private"},
                opts=child,
            )
            for i in range(args.az_count)
        ]
        self.route_table = aws.ec2.RouteTable(
            f"{name}-private-rt", vpc_id=self.vpc.id, tags=args.tags, opts=child
        )
        for i, subnet in enumerate(self.private_subnets):
            aws.ec2.RouteTableAssociation(
                f"{name}-private-rta-{i}", subnet_id=subnet.id, route_table_id=self.route_table.id, opts=child
            )
        self.lambda_security_group = aws.ec2.SecurityGroup(
            f"{name}-lambda-sg",
            vpc_id=self.vpc.id,
            description="Platform Lambdas: egress to VPC endpoints and the search cluster only",
            tags=args.tags,
            opts=child,
        )
        self._endpoints()
        self._flow_logs()
        if args.nat_gateway:
            self._nat(subnets[-2])
        self.register_outputs(
            {"vpcId": self.vpc.id, "privateSubnetIds": [s.id for s in self.private_subnets]}
        )

    def _endpoints(self) -> None:
        name, args = self._name, self._args
        child = pulumi.ResourceOptions(parent=self)
        endpoint_sg = aws.ec2.SecurityGroup(
            f"{name}-endpoint-sg",
            vpc_id=self.vpc.id,
            description="Interface endpoints: HTTPS from the platform Lambdas only",
            tags=args.tags,
            opts=child,
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-endpoint-in",
            security_group_id=endpoint_sg.id,
            referenced_security_group_id=self.lambda_security_group.id,
            ip_protocol="tcp",
            from_port=HTTPS,
            to_port=HTTPS,
            description="HTTPS from the platform Lambdas",
            opts=child,
        )
        self.interface_endpoints = {
            svc: aws.ec2.VpcEndpoint(
                f"{name}-{svc}-endpoint",
                vpc_id=self.vpc.id,
                service_name=f"com.amazonaws.{args.region}.{svc}",
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=[s.id for s in self.private_subnets],
                security_group_ids=[endpoint_sg.id],
                tags=args.tags,
                opts=child,
            )
            for svc in args.interface_services
        }
        self.gateway_endpoints = {
            svc: aws.ec2.VpcEndpoint(
                f"{name}-{svc}-endpoint",
                vpc_id=self.vpc.id,
                service_name=f"com.amazonaws.{args.region}.{svc}",
                vpc_endpoint_type="Gateway",
                route_table_ids=[self.route_table.id],
                tags=args.tags,
                opts=child,
            )
            for svc in GATEWAY_SERVICES
        }
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-lambda-out-vpc",
            security_group_id=self.lambda_security_group.id,
            cidr_ipv4=str(args.cidr),
            ip_protocol="tcp",
            from_port=HTTPS,
            to_port=HTTPS,
            description="HTTPS to interface endpoints and the search cluster inside the VPC",
            opts=child,
        )
        for svc, endpoint in self.gateway_endpoints.items():
            aws.vpc.SecurityGroupEgressRule(
                f"{name}-lambda-out-{svc}",
                security_group_id=self.lambda_security_group.id,
                prefix_list_id=endpoint.prefix_list_id,
                ip_protocol="tcp",
                from_port=HTTPS,
                to_port=HTTPS,
                description=f"HTTPS to the {svc} gateway endpoint",
                opts=child,
            )

    def _flow_logs(self) -> None:
        # Rejected flows only: enough to debug a security-group mistake, at a fraction of
        # the ingestion cost of ALL (https://docs.aws.amazon.com/vpc/latest/userguide/flow-logs.html).
        name, args = self._name, self._args
        child = pulumi.ResourceOptions(parent=self)
        group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            name=args.flow_log_group_name,
            retention_in_days=args.flow_log_retention_days,
            kms_key_id=args.kms_key_arn,
            tags=args.tags,
            opts=child,
        )
        role = aws.iam.Role(
            f"{name}-flow-logs-role",
            name=args.flow_log_role_name,
            assume_role_policy=service_trust("vpc-flow-logs.amazonaws.com"),
            permissions_boundary=permissions_boundary(),
            tags=args.tags,
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-flow-logs-policy",
            role=role.id,
            policy=policy_document(
                [
                    Grant(
                        "FlowLogs",
                        ("logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"),
                        [group.arn.apply(lambda a: f"{a}:*")],
                    )
                ]
            ),
            opts=child,
        )
        aws.ec2.FlowLog(
            f"{name}-flow-log",
            vpc_id=self.vpc.id,
            traffic_type="REJECT",
            log_destination_type="cloud-watch-logs",
            log_destination=group.arn,
            iam_role_arn=role.arn,
            tags=args.tags,
            opts=child,
        )

    def _nat(self, public_cidr: IPv4Network) -> None:
        # Only when config enables it: one NAT in the first zone for egress to non-AWS
        # endpoints. Its hourly charge is the largest fixed cost of a small stack.
        name, args = self._name, self._args
        child = pulumi.ResourceOptions(parent=self)
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=self.vpc.id, tags=args.tags, opts=child)
        public = aws.ec2.Subnet(
            f"{name}-public-0",
            vpc_id=self.vpc.id,
            cidr_block=str(public_cidr),
            availability_zone=self.private_subnets[0].availability_zone,
            map_public_ip_on_launch=False,
            tags={**args.tags, "Name": f"{name}-public-0", "tier": "public"},
            opts=child,
        )
        public_rt = aws.ec2.RouteTable(f"{name}-public-rt", vpc_id=self.vpc.id, tags=args.tags, opts=child)
        aws.ec2.Route(
            f"{name}-public-default",
            route_table_id=public_rt.id,
            destination_cidr_block="0.0.0.0/0",
            gateway_id=igw.id,
            opts=child,
        )
        aws.ec2.RouteTableAssociation(
            f"{name}-public-rta", subnet_id=public.id, route_table_id=public_rt.id, opts=child
        )
        eip = aws.ec2.Eip(f"{name}-nat-eip", domain="vpc", tags=args.tags, opts=child)
        nat = aws.ec2.NatGateway(
            f"{name}-nat", allocation_id=eip.id, subnet_id=public.id, tags=args.tags, opts=child
        )
        aws.ec2.Route(
            f"{name}-private-default",
            route_table_id=self.route_table.id,
            destination_cidr_block="0.0.0.0/0",
            nat_gateway_id=nat.id,
            opts=child,
        )
        for port in sorted(set(args.internet_ports)):
            aws.vpc.SecurityGroupEgressRule(
                f"{name}-lambda-out-nat" + ("" if port == HTTPS else f"-{port}"),
                security_group_id=self.lambda_security_group.id,
                cidr_ipv4="0.0.0.0/0",
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                description=(
                    "HTTPS to the internet through the NAT gateway (config network.natGateway)"
                    if port == HTTPS
                    else f"TCP {port} to an external endpoint through the NAT gateway"
                ),
                opts=child,
            )
