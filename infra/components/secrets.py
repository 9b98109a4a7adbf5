"""Secrets the stack generates itself, so a first `pulumi up` needs no manual secret.

`pulumi_random.RandomPassword` creates the value once and keeps it in the (encrypted)
stack state; changing `generation` replaces it on the next `pulumi up`. The value goes
into a Secrets Manager secret encrypted with the stack key, which the functions read,
and is available to the program as a Pulumi secret output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

# 48 characters of [A-Za-z0-9]: about 285 bits, and safe in an HTTP header unquoted.
LENGTH = 48


@dataclass(frozen=True)
class GeneratedSecretArgs:
    secret_name: str
    description: str
    kms_key_arn: pulumi.Input[str]
    generation: int
    tags: dict[str, str]
    # The API reads its keys as a JSON list (service/api/auth.py); other readers take the value.
    as_json_list: bool = False


class GeneratedSecret(pulumi.ComponentResource):
    secret: aws.secretsmanager.Secret
    value: pulumi.Output[str]

    def __init__(
        self, name: str, args: GeneratedSecretArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("ragplatform:secrets:GeneratedSecret", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        password = random.RandomPassword(
            f"{name}-value",
            length=LENGTH,
            special=False,
            keepers={"generation": str(args.generation)},
            opts=child,
        )
        self.value = pulumi.Output.secret(password.result)
        self.secret = aws.secretsmanager.Secret(
            f"{name}-secret",
            name=args.secret_name,
            description=args.description,
            kms_key_id=args.kms_key_arn,
            tags=args.tags,
            opts=child,
        )
        stored: pulumi.Output[str] = (
            self.value.apply(lambda v: json.dumps([v])) if args.as_json_list else self.value
        )
        aws.secretsmanager.SecretVersion(
            f"{name}-version",
            secret_id=self.secret.id,
            secret_string=stored,  # secret already: derived from the generated value
            opts=child,
        )
        self.register_outputs({"secretArn": self.secret.arn})
