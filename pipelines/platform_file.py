"""The running local platform's description: `<data_dir>/platform.json`, written by `ragctl dev`.

One definition for its writer (`pipelines.dev`) and its readers (`ragctl ingest`, `ragctl docs`,
the post-deploy suite, the load test and the end-to-end tests).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from pathlib import Path

from service.contract import Env

REGION = "us-east-1"
STACK = "local"
LOCAL_RATE_LIMIT_PER_MINUTE = 60_000
# moto accepts any credentials; these keep boto3 from looking for real ones.
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
FILE_NAME = "platform.json"


def platform_file(data_dir: Path) -> Path:
    return data_dir / FILE_NAME


@dataclass(frozen=True)
class PlatformInfo:
    """What `ragctl dev` writes to `<data_dir>/platform.json` for the CLI and `make smoke`."""

    api_url: str
    api_key: str
    aws_endpoint_url: str
    document_bucket: str
    ingest_queue_url: str
    dead_letter_queue_url: str
    data_dir: str
    region: str = REGION

    @classmethod
    def load(cls, data_dir: Path) -> PlatformInfo:
        path = platform_file(data_dir)
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: start the local platform with `make dev` first")
        return cls(**json.loads(path.read_text()))

    def child_env(self) -> dict[str, str]:
        """Environment for every child and for CLI commands that talk to the running platform."""
        return {
            Env.ENVIRONMENT: "local",
            Env.STACK_NAME: STACK,
            Env.DATA_DIR: self.data_dir,
            Env.AWS_REGION: self.region,
            Env.AWS_ENDPOINT_URL: self.aws_endpoint_url,
            Env.DOCUMENT_BUCKET: self.document_bucket,
            Env.INGEST_QUEUE_URL: self.ingest_queue_url,
            Env.DEAD_LETTER_QUEUE_URL: self.dead_letter_queue_url,
            Env.API_KEYS: self.api_key,
            # Every local client shares the one local key, so the local limit is generous
            # (a 50-user load test stays far below it); set the variable to try the real one.
            Env.RATE_LIMIT_PER_MINUTE: os.environ.get(
                Env.RATE_LIMIT_PER_MINUTE, str(LOCAL_RATE_LIMIT_PER_MINUTE)
            ),
            **LOCAL_CREDENTIALS,
        }


def field_name(name: str) -> str:
    """A key of the platform file, checked against `PlatformInfo` so readers cannot drift from the writer."""
    if name not in {f.name for f in fields(PlatformInfo)}:
        raise KeyError(f"{name!r} is not a field of {FILE_NAME}")
    return name
