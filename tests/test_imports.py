"""Tests and benchmarks import their helpers as the code does: from `tests.support`, never
by putting a folder on sys.path, and never from another test module. (pytest puts each
test folder on sys.path, so such imports would work here and nowhere else.)"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*(ROOT / "tests").rglob("*.py"), *(ROOT / "bench").rglob("*.py")])
# Every module name a file under tests/ would have with its own folder on sys.path.
LOOSE_NAMES = {path.stem for path in (ROOT / "tests").rglob("*.py")} - {"__init__"}


def offences(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (
            isinstance(node, ast.Attribute)
            and node.attr in ("insert", "append", "extend")
            and ast.unparse(node.value) == "sys.path"
        ):
            names, found = [], [*found, f"line {node.lineno}: changes sys.path"]
        else:
            continue
        loose = [name for name in names if name.split(".")[0] in LOOSE_NAMES]
        found += [f"line {node.lineno}: imports {name}" for name in loose]
    return found


def test_no_test_file_changes_sys_path_or_imports_a_loose_module() -> None:
    problems = {str(path.relative_to(ROOT)): offences(path) for path in SOURCES}
    assert {path: found for path, found in problems.items() if found} == {}
