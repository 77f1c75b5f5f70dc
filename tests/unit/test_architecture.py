"""engine/ must stay pure: it may import only the standard library, networkx and itself."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[2] / "engine"
ALLOWED_THIRD_PARTY = {"networkx"}
FORBIDDEN = {"sqlmodel", "sqlalchemy", "redis", "arq", "nicegui", "httpx", "aiosqlite",
             "asyncpg", "yaml", "croniter", "authlib", "requests", "socket", "subprocess",
             "urllib", "http", "asyncio", "sqlite3", "smtplib", "os", "shutil", "app",
             "worker", "pages"}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name.split(".")[0]) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def test_engine_imports_only_the_standard_library_networkx_and_itself() -> None:
    offenders = []
    for path in sorted(ENGINE.rglob("*.py")):
        for line, module in _imports(path):
            if module in FORBIDDEN:
                offenders.append(f"{path.name}:{line} imports {module} (does I/O)")
            elif (module not in sys.stdlib_module_names and module != "engine"
                  and module not in ALLOWED_THIRD_PARTY):
                offenders.append(f"{path.name}:{line} imports {module} (not allowed)")
    assert not offenders, "\n".join(offenders)


def test_the_import_check_sees_every_engine_module() -> None:
    modules = {p.stem for p in ENGINE.glob("*.py")}
    assert {"execution", "definition", "expressions", "schema"} <= modules
    assert all(_imports(p) or p.stem == "__init__" for p in ENGINE.glob("*.py"))
