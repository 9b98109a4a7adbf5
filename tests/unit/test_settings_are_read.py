"""Every settings knob is read by some code: a documented env var that nothing reads is a promise
the platform silently breaks (`MIN_RELEVANCE` was documented and never read)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ROOT / "service" / "settings.py"


def _code_outside_settings() -> str:
    return "\n".join(
        path.read_text()
        for package in ("service", "pipelines", "infra")
        for path in sorted((ROOT / package).rglob("*.py"))
        if path != SETTINGS
    )


CODE = _code_outside_settings()
OWN = SETTINGS.read_text()


def is_read(field: str) -> bool:
    """Read as an attribute, by name (getattr tables), or by one of Settings' own properties."""
    return bool(
        re.search(rf"\.{field}\b", CODE)
        or re.search(rf"[\"']{field}[\"']", CODE)
        or re.search(rf"self\.{field}\b", OWN)
    )


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_read_somewhere(field: str) -> None:
    # Given a knob operators can set through the environment
    # Then some code outside its declaration reads it
    assert is_read(field), f"Settings.{field} is declared (and documented) but nothing reads it"


def test_the_check_goes_red_on_an_unread_knob() -> None:
    # Given a field name no code mentions
    # Then the check reports it unread
    assert not is_read("a_knob_nobody_reads")
