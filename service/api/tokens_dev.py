"""Development tokens for the local platform: a signing key of its own in the data directory.

`ragctl token issue --user ann --groups eng` signs with it, and the local API verifies with its
public half (served at `DEV_JWKS_PATH` too), through the same `TokenVerifier` as a real issuer's
tokens; so the whole signed-in path runs offline and in tests. Settings refuse dev tokens
outside `ENVIRONMENT=local`.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey

# Not URLs: nothing outside this machine issues or accepts these tokens.
DEV_ISSUER = "urn:rag-platform:local-dev"
DEV_AUDIENCE = "rag-platform-local"
DEV_ALGORITHM = "ES256"
DEV_JWKS_PATH = "/.well-known/jwks.json"
DEV_TOKEN_TTL_SECONDS = 3600


def dev_key_path(data_dir: Path) -> Path:
    return data_dir / "dev-signing-key.json"


def ensure_dev_key(data_dir: Path) -> Path:
    """Create the signing key once (0600 from the start); later calls keep it."""
    path = dev_key_path(data_dir)
    if path.exists():
        return path
    data_dir.mkdir(parents=True, exist_ok=True)
    key = ECKey.generate_key(
        "P-256", parameters={"kid": uuid.uuid4().hex[:16], "use": "sig", "alg": DEV_ALGORITHM}
    )
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path  # another process made it first; keep theirs
    with os.fdopen(descriptor, "w") as file:
        json.dump(key.as_dict(private=True), file)
    return path


def _load(data_dir: Path) -> ECKey:
    return ECKey.import_key(json.loads(dev_key_path(data_dir).read_text()))


def dev_jwks(data_dir: Path) -> Mapping[str, Any]:
    """The public JWKS of the development key; empty if none was created yet."""
    if not dev_key_path(data_dir).exists():
        return {"keys": []}
    return {"keys": [_load(data_dir).as_dict(private=False)]}


def issue_dev_token(
    data_dir: Path,
    *,
    user: str,
    groups: Iterable[str],
    groups_claim: str = "groups",
    ttl_seconds: int = DEV_TOKEN_TTL_SECONDS,
    now: float | None = None,
    audience: str = DEV_AUDIENCE,
    issuer: str = DEV_ISSUER,
    extra_claims: Mapping[str, str] | None = None,
) -> str:
    key = _load(data_dir)
    issued = int(time.time() if now is None else now)
    claims = {
        **(extra_claims or {}),
        "iss": issuer,
        "aud": audience,
        "sub": user,
        "iat": issued,
        "exp": issued + ttl_seconds,
        groups_claim: sorted(set(groups)),
    }
    return jwt.encode({"alg": DEV_ALGORITHM, "kid": key.kid, "typ": "JWT"}, claims, key)
