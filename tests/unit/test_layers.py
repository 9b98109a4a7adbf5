"""`service/handlers/` holds AWS's entry points only: no other service module imports from it.

Issue 13: the local API (`service/api/asgi.py`) imported `service/handlers/runtime.py`, reaching
into a Lambda entry point. The worker and the ingest benchmark (pipelines/) call the ingest
handler on purpose: they emulate Lambda's event source.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = "service.handlers"


def imported_modules(source: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def reaches_into_handlers(path: Path) -> bool:
    return any(m == HANDLERS or m.startswith(f"{HANDLERS}.") for m in imported_modules(path.read_text()))


def test_the_check_sees_an_import_of_a_handler_module() -> None:
    # Given the import asgi.py had before the split, Then the check flags it
    for line in ("from service.handlers.runtime import container", "from service.handlers import runtime"):
        assert any(m.startswith(HANDLERS) for m in imported_modules(line))


def test_nothing_outside_handlers_imports_a_handler_module() -> None:
    # Given every module of service/ outside service/handlers/
    sources = [p for p in (ROOT / "service").rglob("*.py") if "handlers" not in p.relative_to(ROOT).parts]
    # Then none imports from service/handlers/ (shared wiring lives in service/runtime.py)
    offenders = [str(p.relative_to(ROOT)) for p in sources if reaches_into_handlers(p)]
    assert offenders == []
