"""The running local platform's description: `<data_dir>/platform.json`, written by `ragctl dev`.

One definition for its writer (`pipelines.dev`) and its readers (`ragctl ingest`, `ragctl docs`,
the post-deploy suite, the load test and the end-to-end tests).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from service.contract import Env

REGION = "us-east-1"
STACK = "local"
LOCAL_RATE_LIMIT_PER_MINUTE = 60_000
# moto accepts any credentials; these keep boto3 from looking for real ones.
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
FILE_NAME = "platform.json"
# Development tokens' groups, until the shell sets AUTH_GROUP_MAP: `ragctl token issue --groups
# readers` reads the default workspace, `--groups admins` administers every workspace.
LOCAL_GROUP_MAP = json.dumps(
    {
        "readers": {"workspaces": ["default"], "role": "reader"},
        "writers": {"workspaces": ["default"], "role": "writer"},
        "admins": {"workspaces": ["*"], "role": "admin"},
    }
)
DEFAULT_DATA_DIR = ".data"
# The checkout `ragctl` runs from: its `.data` is where `make dev` keeps the platform.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class PlatformNotRunning(RuntimeError):
    """No local platform answers for this data directory; the message says what to do, in one line."""


def platform_file(data_dir: Path) -> Path:
    return data_dir / FILE_NAME


def find_data_dir(explicit: Path | None = None, cwd: Path | None = None) -> Path:
    """The data directory of the platform to talk to, from any working directory.

    In order: `--data-dir`, the `DATA_DIR` variable, `./.data` if it holds a platform file,
    then the `.data` of the checkout `ragctl` is installed from (where `make dev` puts it).
    """
    if explicit is not None:
        return explicit
    if os.environ.get(Env.DATA_DIR):
        return Path(os.environ[Env.DATA_DIR])
    local = (cwd or Path.cwd()) / DEFAULT_DATA_DIR
    if platform_file(local).exists():
        return local
    return PROJECT_ROOT / DEFAULT_DATA_DIR


def _answers(endpoint: str) -> bool:
    """Whether the platform's S3/SQS endpoint answers (a process id alone may have been reused)."""
    import httpx

    try:
        httpx.get(f"{endpoint}/moto-api/", timeout=3)
    except httpx.HTTPError:
        return False
    return True


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, but someone else's
    return True


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
    pid: int | None = None

    @classmethod
    def load(cls, data_dir: Path) -> PlatformInfo:
        path = platform_file(data_dir)
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: start the local platform with `make dev` first")
        return cls(**json.loads(path.read_text()))

    @classmethod
    def running(cls, data_dir: Path) -> PlatformInfo:
        """The platform described in `data_dir`, if it is running; else `PlatformNotRunning`."""
        try:
            info = cls.load(data_dir)
        except FileNotFoundError:
            raise PlatformNotRunning(
                f"no local platform in {data_dir.resolve()}: start one with `make dev` "
                "(or pass --data-dir / set DATA_DIR)"
            ) from None
        except (ValueError, TypeError):
            raise PlatformNotRunning(f"{platform_file(data_dir)} is unreadable: restart `make dev`") from None
        if (info.pid is not None and not pid_alive(info.pid)) or not _answers(info.aws_endpoint_url):
            raise PlatformNotRunning(
                f"the local platform in {data_dir.resolve()} is not running ({FILE_NAME} is left from a "
                "stopped run): start it with `make dev`"
            )
        return info

    def save(self, data_dir: Path) -> None:
        """Written 0600 from its creation: it holds the API key."""
        from pipelines.files import write_atomically

        write_atomically(platform_file(data_dir), json.dumps(asdict(self), indent=2).encode())

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
            **local_sign_in(),
            **LOCAL_CREDENTIALS,
        }


def local_sign_in() -> dict[str, str]:
    """Issue 15: the local API accepts development tokens (`ragctl token issue`), verified against
    the data directory's own signing key; `AUTH_GROUP_MAP` from the shell maps their groups."""
    from service.api.tokens_dev import DEV_ALGORITHM, DEV_AUDIENCE, DEV_ISSUER

    return {
        Env.AUTH_DEV_TOKENS: "true",
        Env.AUTH_ISSUER: DEV_ISSUER,
        Env.AUTH_AUDIENCE: DEV_AUDIENCE,
        Env.AUTH_ALGORITHMS: DEV_ALGORITHM,
        Env.AUTH_GROUP_MAP: os.environ.get(Env.AUTH_GROUP_MAP, LOCAL_GROUP_MAP),
    }


def field_name(name: str) -> str:
    """A key of the platform file, checked against `PlatformInfo` so readers cannot drift from the writer."""
    if name not in {f.name for f in fields(PlatformInfo)}:
        raise KeyError(f"{name!r} is not a field of {FILE_NAME}")
    return name
