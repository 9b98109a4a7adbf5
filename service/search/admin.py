"""Versioned indexes behind a read alias, for zero-downtime reindex and rollback.

OpenSearch and Elasticsearch implement this with index aliases (one atomic
`_aliases` call moves the read alias); the local engine with `LocalCatalog`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from service.search.local_catalog import LocalCatalog
from service.search.protocol import SearchBackend

if TYPE_CHECKING:
    from service.search.vector_store import Approximate


class IndexAdmin(Protocol):
    @property
    def alias(self) -> str: ...

    def current_version(self) -> str | None:
        """The concrete index the read alias points at."""
        ...

    def versions(self) -> list[str]:
        """Every concrete index of this alias, oldest first."""
        ...

    def new_version_name(self) -> str:
        """A concrete index name not used yet, e.g. `<alias>-v3`."""
        ...

    def open_version(self, name: str) -> SearchBackend:
        """A backend that reads and writes the concrete index `name`, created idempotently."""
        ...

    def switch(self, name: str) -> None:
        """Point the read alias at `name` in one atomic step."""
        ...

    def rollback(self) -> str:
        """Point the alias back at the version it read before the last switch; return that name."""
        ...


class LocalIndexAdmin:
    def __init__(
        self,
        data_dir: Path,
        alias: str,
        dimension: int,
        approximate: Approximate | None = None,
    ) -> None:
        self._catalog = LocalCatalog(data_dir)
        self._alias = alias
        self._dimension = dimension
        self._approximate = approximate

    @property
    def alias(self) -> str:
        return self._alias

    def current_version(self) -> str | None:
        return self._catalog.current(self._alias)

    def versions(self) -> list[str]:
        return sorted(self._catalog.versions(self._alias), key=_version_number)

    def new_version_name(self) -> str:
        numbers = [_version_number(v) for v in self.versions()]
        current = self.current_version()
        if current:
            numbers.append(_version_number(current))
        return f"{self._alias}-v{max(numbers, default=0) + 1}"

    def open_version(self, name: str) -> SearchBackend:
        from service.search.local import LocalSearchBackend

        return LocalSearchBackend(self._catalog.root / name, self._dimension, self._approximate)

    def switch(self, name: str) -> None:
        if not (self._catalog.root / name).is_dir():
            raise ValueError(f"index version {name!r} does not exist")
        self._catalog.switch(self._alias, name)

    def rollback(self) -> str:
        return self._catalog.rollback(self._alias)


def _version_number(name: str) -> int:
    tail = name.rsplit("-v", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class AliasFollowingBackend:
    """A local backend that reads and writes whatever version the alias points at now.

    The local equivalent of addressing an OpenSearch alias: every call checks the
    catalog file's modification time (one `stat`) and, after a switch or rollback,
    opens the new version and closes the old one (releasing its writer lock).
    """

    def __init__(
        self,
        catalog: LocalCatalog,
        alias: str,
        dimension: int,
        approximate: Approximate | None = None,
    ) -> None:
        self._catalog = catalog
        self._alias = alias
        self._dimension = dimension
        self._approximate = approximate
        self._stamp: float | None = None
        self._name: str | None = None
        self._backend: Any = None

    def _current(self) -> Any:
        stamp = self._catalog.stamp()
        if self._backend is None or stamp != self._stamp:
            directory = self._catalog.resolve(self._alias)
            if directory.name != self._name:
                from service.search.local import LocalSearchBackend

                if self._backend is not None:
                    self._backend.close()
                self._backend = LocalSearchBackend(directory, self._dimension, self._approximate)
                self._name = directory.name
            self._stamp = stamp
        return self._backend

    @property
    def version(self) -> str | None:
        self._current()
        return self._name

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._current(), name)

    @property
    def dimension(self) -> int:
        return int(self._current().dimension)

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None
