"""`ragctl keys create|list|revoke` and `ragctl token issue`: scoped API keys and development tokens.

Keys go to the local platform's data directory by default, or to a stack's keys table when
`KEYS_TABLE` and `API_KEY_PEPPER_SECRET_ARN` are set (operator credentials: the API itself can
only read keys). A key is printed once, at creation; only its keyed hash is stored.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Column, Table

from pipelines.files import create_private
from pipelines.platform_file import find_data_dir
from service.access import DEFAULT_WORKSPACE, Role
from service.api.keys import KEY_ID, KeyStore, local_pepper_path, new_key, new_pepper
from service.settings import Settings, SettingsError, load_settings

keys_app = typer.Typer(help="Scoped API keys: create (shown once), list, revoke.", no_args_is_help=True)
token_app = typer.Typer(
    help="Development tokens signed by the local platform's own key.", no_args_is_help=True
)
console = Console()
err = Console(stderr=True, soft_wrap=True)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="The local platform's data directory.", show_default=False),
]
_DURATION = re.compile(r"^(\d+)([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta | None:
    """`30d`, `12h`, `90m`, or `never` (None)."""
    if text == "never":
        return None
    match = _DURATION.match(text)
    if not match or int(match.group(1)) == 0:
        raise typer.BadParameter("use a positive number of m, h or d (30d, 12h, 90m), or `never`")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _settings(data_dir: Path | None) -> Settings:
    try:
        return load_settings(data_dir=find_data_dir(data_dir))
    except SettingsError as error:
        err.print(f"[red]{error}[/]")
        raise typer.Exit(2) from None


def key_store(settings: Settings) -> KeyStore:
    from service.api.auth_wiring import build_key_store

    return build_key_store(settings)


def pepper_for_create(settings: Settings) -> bytes:
    """The stack's pepper secret, or the local one (created 0600 on first use)."""
    if settings.api_key_pepper_secret_arn:
        from service.wiring import aws_client

        value = aws_client(settings, "secretsmanager").get_secret_value(
            SecretId=settings.api_key_pepper_secret_arn
        )["SecretString"]
        return str(value).encode()
    if settings.keys_table:
        raise SettingsError("API_KEY_PEPPER_SECRET_ARN is required with KEYS_TABLE")
    return local_pepper(settings.data_dir)


def local_pepper(data_dir: Path) -> bytes:
    """The local platform's pepper, created 0600 on first use (the API only ever reads it)."""
    path = local_pepper_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    create_private(path, new_pepper())
    return path.read_bytes()


def create_key(
    settings: Settings,
    *,
    name: str,
    role: Role,
    workspaces: list[str],
    expires_in: timedelta | None,
    now: datetime | None = None,
) -> tuple[str, str]:
    """(key id, plaintext key). The plaintext exists only in the return value."""
    at = now or datetime.now(UTC)
    plaintext, record = new_key(
        pepper_for_create(settings),
        name=name,
        role=role,
        workspaces=workspaces,
        now=at,
        expires_at=at + expires_in if expires_in is not None else None,
    )
    key_store(settings).create(record)
    return record.key_id, plaintext


def _role(value: str) -> Role:
    try:
        return Role[value.upper()]
    except KeyError:
        raise typer.BadParameter("reader, writer or admin") from None


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="What the key is for (shown in `keys list`).")],
    role: Annotated[str, typer.Option("--role", help="reader (search, query), writer (+ ingest), admin.")],
    workspace: Annotated[
        list[str] | None, typer.Option("--workspace", help="A workspace it may use; repeat for more.")
    ] = None,
    expires_in: Annotated[str, typer.Option("--expires-in", help="30d, 12h, 90m or never.")] = "90d",
    data_dir: DataDir = None,
) -> None:
    """Create a key and print it once: it cannot be shown again."""
    settings = _settings(data_dir)
    try:
        key_id, plaintext = create_key(
            settings,
            name=name,
            role=_role(role),
            workspaces=workspace or [DEFAULT_WORKSPACE],
            expires_in=parse_duration(expires_in),
        )
    except (ValueError, SettingsError) as error:
        err.print(f"[red]{error}[/]")
        raise typer.Exit(2) from None
    err.print(f"key {key_id} created; it is shown only now (send it in the x-api-key header):")
    print(plaintext)


@keys_app.command("list")
def list_keys(
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per key, for scripts.")] = False,
) -> None:
    """Every key: id, name, role, workspaces, state, expiry. Never a secret, nor its hash."""
    now = datetime.now(UTC)
    rows = [
        {
            "id": record.key_id,
            "name": record.name,
            "role": record.role.name.lower(),
            "workspaces": ",".join(sorted(record.workspaces)),
            "state": record.state(now),
            "created": record.created_at.strftime("%Y-%m-%d %H:%M"),
            "expires": record.expires_at.strftime("%Y-%m-%d %H:%M") if record.expires_at else "never",
        }
        for record in key_store(_settings(data_dir)).list()
    ]
    if as_json:
        for row in rows:
            print(json.dumps(row))
        return
    table = Table(
        *(
            Column(name, no_wrap=name == "id")
            for name in ("id", "name", "role", "workspaces", "state", "created", "expires")
        )
    )
    for row in rows:
        table.add_row(*row.values())
    console.print(table)


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (the part after `rp_`).")],
    data_dir: DataDir = None,
) -> None:
    """Revoke a key: the API refuses it from the next request on."""
    if not KEY_ID.match(key_id):
        err.print("[red]a key id is 16 hexadecimal characters (see `ragctl keys list`)[/]")
        raise typer.Exit(2)
    if not key_store(_settings(data_dir)).revoke(key_id, datetime.now(UTC)):
        err.print(f"[red]no key {key_id}[/]")
        raise typer.Exit(1)
    err.print(f"key {key_id} revoked")


@token_app.command("issue")
def issue(
    user: Annotated[str, typer.Option("--user", help="The token's subject (sub).")],
    groups: Annotated[list[str] | None, typer.Option("--groups", help="A group; repeat for more.")] = None,
    ttl_seconds: Annotated[
        int, typer.Option("--ttl", min=60, max=86_400, help="Lifetime in seconds.")
    ] = 3600,
    data_dir: DataDir = None,
) -> None:
    """Print a development token for the local platform (Authorization: Bearer <token>)."""
    from service.api.tokens_dev import ensure_dev_key, issue_dev_token

    settings = _settings(data_dir)
    ensure_dev_key(settings.data_dir)
    print(
        issue_dev_token(
            settings.data_dir,
            user=user,
            groups=groups or [],
            groups_claim=settings.auth_groups_claim,
            ttl_seconds=ttl_seconds,
        )
    )
