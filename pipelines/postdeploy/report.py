"""Check results and how they are printed: one line per check, then a verdict."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    seconds: float = 0.0


def render(title: str, checks: Sequence[Check]) -> str:
    lines = [f"{title}:"]
    lines += [f"  [{'PASS' if c.ok else 'FAIL'}] {c.name} ({c.seconds:.1f}s): {c.detail}" for c in checks]
    failed = [c.name for c in checks if not c.ok]
    verdict = f"FAILED: {', '.join(failed)}" if failed else f"passed ({len(checks)} checks)"
    lines.append(f"{title} {verdict}")
    return "\n".join(lines)


def emit(title: str, checks: Sequence[Check], out: TextIO, json_path: Path | None) -> int:
    """Print the report, optionally write it as JSON (CI keeps it as an artifact); 1 if any check failed."""
    print(render(title, checks), file=out)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps([asdict(c) for c in checks], indent=2) + "\n", encoding="utf-8")
    return 0 if checks and all(c.ok for c in checks) else 1


def all_ok(checks: Iterable[Check]) -> bool:
    return all(c.ok for c in checks)


Clock = Callable[[], float]
Sleep = Callable[[float], None]


def wait_for(
    predicate: Callable[[], bool], timeout: float, interval: float, clock: Clock, sleep: Sleep
) -> bool:
    """Poll `predicate` until it holds or `timeout` seconds pass; ingestion is asynchronous."""
    deadline = clock() + timeout
    while True:
        if predicate():
            return True
        if clock() >= deadline:
            return False
        sleep(interval)
