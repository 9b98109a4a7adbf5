"""Versioned local indexes behind a read alias: the local equivalent of OpenSearch aliases.

`<data_dir>/indexes/<name>/` holds one index version; `aliases.json` maps an
alias to the version it reads, plus the history that `reindex --rollback`
uses. The switch is one atomic `os.replace` of that file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from pydantic import BaseModel


class AliasState(BaseModel):
    current: str
    history: list[str] = []


class LocalCatalog:
    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "indexes"
        self.root.mkdir(parents=True, exist_ok=True)
        self._file = self.root / "aliases.json"

    def _load(self) -> dict[str, AliasState]:
        if not self._file.exists():
            return {}
        raw = json.loads(self._file.read_text())
        return {alias: AliasState.model_validate(state) for alias, state in raw.items()}

    def _save(self, states: dict[str, AliasState]) -> None:
        payload = json.dumps({a: s.model_dump() for a, s in states.items()}, indent=2)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".aliases-")
        with os.fdopen(fd, "w") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self._file)

    def resolve(self, alias: str) -> Path:
        """The directory the alias reads; the first version is created on first use."""
        states = self._load()
        if alias not in states:
            states[alias] = AliasState(current=f"{alias}-v1")
            self._save(states)
        return self.root / states[alias].current

    def stamp(self) -> float:
        """Changes whenever an alias moves (the file is replaced atomically)."""
        try:
            return self._file.stat().st_mtime_ns / 1e9
        except FileNotFoundError:
            return 0.0

    def current(self, alias: str) -> str | None:
        state = self._load().get(alias)
        return state.current if state else None

    def history(self, alias: str) -> list[str]:
        state = self._load().get(alias)
        return list(state.history) if state else []

    def versions(self, alias: str) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and p.name.startswith(f"{alias}-v"))

    def switch(self, alias: str, name: str) -> None:
        states = self._load()
        previous = states.get(alias)
        history = [*previous.history, previous.current] if previous else []
        states[alias] = AliasState(current=name, history=history[-20:])
        self._save(states)

    def rollback(self, alias: str) -> str:
        states = self._load()
        state = states.get(alias)
        if state is None or not state.history:
            raise ValueError(f"alias {alias!r} has no earlier version to roll back to")
        states[alias] = AliasState(current=state.history[-1], history=state.history[:-1])
        self._save(states)
        return states[alias].current
