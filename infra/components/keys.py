"""The scoped API keys table (issue 15): one item per key, keyed by its public id.

Items hold only a keyed hash of each secret (service/api/keys.py). Still, losing the table locks
every integration out, so point-in-time recovery is always on (the policy pack checks it: rule
`keys-table-protected`), and it is encrypted with the stack key like every table.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from service.contract import KEYS_HASH_KEY


@dataclass(frozen=True)
class KeysTableArgs:
    table_name: str
    kms_key_arn: pulumi.Input[str]
    deletion_protection: bool
    tags: dict[str, str]


class KeysTable(pulumi.ComponentResource):
    table: aws.dynamodb.Table

    def __init__(self, name: str, args: KeysTableArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ragplatform:keys:KeysTable", name, None, opts)
        self.table = aws.dynamodb.Table(
            f"{name}-table",
            name=args.table_name,
            # On-demand: one small read per request that carries a scoped key.
            billing_mode="PAY_PER_REQUEST",
            hash_key=KEYS_HASH_KEY,
            attributes=[aws.dynamodb.TableAttributeArgs(name=KEYS_HASH_KEY, type="S")],
            server_side_encryption=aws.dynamodb.TableServerSideEncryptionArgs(
                enabled=True, kms_key_arn=args.kms_key_arn
            ),
            point_in_time_recovery=aws.dynamodb.TablePointInTimeRecoveryArgs(enabled=True),
            deletion_protection_enabled=args.deletion_protection,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"tableName": self.table.name})
