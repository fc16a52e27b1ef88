"""The package's import graph, lazy (function-level) imports included, follows the data flow.

Stages may import earlier stages and the shared layers, never a later stage, and no
module may take part in an import cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

from phonft_testdata import REPO

SRC = REPO / "src" / "phonft"

#: The stages in data-flow order; a stage may import only stages before it.
STAGES = ("structures", "displacements", "references", "augment", "finetune", "evaluate", "figures")
#: The entry points that wire every stage together (the command line, and the notebook API).
ENTRY = {"phonft.cli", "phonft.__main__", "phonft.api"}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """phonft modules ``path`` imports anywhere in its body (resolved to known modules)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name.startswith("phonft"):
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in SRC.rglob("*.py")}
    modules = set(files)
    return {m: imports_of(p, modules) - {m, "phonft"} for m, p in files.items()}


def stage_of(module: str) -> int | None:
    parts = module.split(".")
    return STAGES.index(parts[1]) if len(parts) > 1 and parts[1] in STAGES else None


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (cycle := visit(n)):
                return cycle
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


def test_no_import_cycle():
    assert find_cycle(import_graph()) is None, " -> ".join(find_cycle(import_graph()))


def test_no_stage_imports_a_later_stage():
    bad = []
    for m, deps in import_graph().items():
        if m in ENTRY or stage_of(m) is None:
            continue
        bad += [f"{m} -> {d}" for d in sorted(deps) if stage_of(d) is not None and stage_of(d) > stage_of(m)]
    assert not bad, bad


def test_shared_layers_import_no_stage():
    bad = [f"{m} -> {d}" for m, deps in import_graph().items() if m not in ENTRY and stage_of(m) is None
           for d in sorted(deps) if stage_of(d) is not None]
    assert not bad, bad


def test_the_checker_sees_lazy_imports(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("def f():\n    from phonft.evaluate.metrics import mae\n")
    assert imports_of(f, {"phonft.evaluate.metrics", "phonft.evaluate"}) == {"phonft.evaluate.metrics"}
