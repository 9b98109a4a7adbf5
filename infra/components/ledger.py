"""The document ledger: one DynamoDB item per document version the ingester has seen."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from service.contract import LEDGER_HASH_KEY, LEDGER_STATUS_ATTRIBUTE, LEDGER_STATUS_INDEX


@dataclass(frozen=True)
class LedgerTableArgs:
    table_name: str
    kms_key_arn: pulumi.Input[str]
    point_in_time_recovery: bool
    deletion_protection: bool
    tags: dict[str, str]


class LedgerTable(pulumi.ComponentResource):
    table: aws.dynamodb.Table

    def __init__(self, name: str, args: LedgerTableArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ragplatform:ledger:LedgerTable", name, None, opts)
        self.table = aws.dynamodb.Table(
            f"{name}-table",
            name=args.table_name,
            # On-demand: ingestion is bursty and idle most of the time.
            billing_mode="PAY_PER_REQUEST",
            hash_key=LEDGER_HASH_KEY,
            attributes=[
                aws.dynamodb.TableAttributeArgs(name=LEDGER_HASH_KEY, type="S"),
                aws.dynamodb.TableAttributeArgs(name=LEDGER_STATUS_ATTRIBUTE, type="S"),
            ],
            global_secondary_indexes=[
                aws.dynamodb.TableGlobalSecondaryIndexArgs(
                    name=LEDGER_STATUS_INDEX,
                    key_schemas=[
                        aws.dynamodb.TableGlobalSecondaryIndexKeySchemaArgs(
                            attribute_name=LEDGER_STATUS_ATTRIBUTE, key_type="HASH"
                        )
                    ],
                    projection_type="ALL",
                )
            ],
            server_side_encryption=aws.dynamodb.TableServerSideEncryptionArgs(
                enabled=True, kms_key_arn=args.kms_key_arn
            ),
            point_in_time_recovery=aws.dynamodb.TablePointInTimeRecoveryArgs(
                enabled=args.point_in_time_recovery
            ),
            deletion_protection_enabled=args.deletion_protection,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"tableName": self.table.name})
