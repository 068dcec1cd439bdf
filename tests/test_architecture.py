"""The house rules that code review would otherwise have to remember (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from engine.jobs import JobState

ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """Modules of `known` that `path` imports, lazily or not (a lazy import that
    dodges a cycle is still a cycle); `if TYPE_CHECKING:` blocks don't count."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for child in ast.walk(node)
    }
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != me:
                found.add(name)
    return found


@pytest.mark.parametrize("package", ["bot", "engine"])
def test_no_import_cycles(package):
    files = {module_name(path): path for path in (ROOT / package).rglob("*.py")}
    graph = {name: imported_modules(path, set(files)) for name, path in files.items()}
    cycles = set()

    def visit(name: str, stack: list[str]) -> None:
        for target in graph[name]:
            if target in stack:
                cycle = stack[stack.index(target):]
                turn = cycle.index(min(cycle))
                cycles.add(" -> ".join(cycle[turn:] + cycle[:turn]))
            elif target.startswith(package) and len(stack) < 12:
                visit(target, [*stack, target])

    for name in graph:
        visit(name, [name])
    assert sorted(cycles) == []


def test_no_job_state_string_literals_under_bot():
    """Job states are engine.jobs.JobState members, never bare strings."""
    states = {state.value for state in JobState}
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}"
        for path in sorted((ROOT / "bot").rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and node.value in states
    ]
    assert found == []
