"""Credentials for endpoints outside AWS, read from Secrets Manager once per cold start.

A stack never puts a credential in a function's environment: it sets the secret's id
(`SEARCH_CREDENTIALS_SECRET_ID`, `OPENAI_API_KEY_SECRET_ID`), and `with_secrets` returns the
settings with the value filled in (`SEARCH_API_KEY`, `OPENAI_API_KEY`). A secret that is
missing, or holds no value, stops the function at start naming the variable and the secret,
instead of every request failing later with the endpoint's 401.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import SecretStr

from service.contract import Env
from service.settings import Settings, SettingsError

# (secret-id field, value field, the variable that names the secret)
_SECRETS = (
    ("search_credentials_secret_id", "search_api_key", Env.SEARCH_CREDENTIALS_SECRET_ID),
    ("openai_api_key_secret_id", "openai_api_key", Env.OPENAI_API_KEY_SECRET_ID),
)


def wanted(settings: Settings) -> list[str]:
    """The secret ids `settings` still needs a value for."""
    return [
        str(getattr(settings, id_field))
        for id_field, value_field, _ in _SECRETS
        if getattr(settings, id_field) and getattr(settings, value_field) is None
    ]


def with_secrets(settings: Settings, fetch: Callable[[str], str]) -> Settings:
    """`settings` with each referenced secret's value; `fetch(secret_id)` returns its SecretString."""
    update: dict[str, SecretStr] = {}
    problems: list[str] = []
    for id_field, value_field, variable in _SECRETS:
        secret_id = getattr(settings, id_field)
        if not secret_id or getattr(settings, value_field) is not None:
            continue
        try:
            value = fetch(secret_id).strip()
        except Exception as error:
            problems.append(
                f"{variable}={secret_id}: cannot read the secret ({type(error).__name__}: {error})"
            )
            continue
        if not value:
            problems.append(f"{variable}={secret_id}: the secret holds no value")
            continue
        update[value_field] = SecretStr(value)
    if problems:
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(problems))
    return settings.model_copy(update=update) if update else settings
