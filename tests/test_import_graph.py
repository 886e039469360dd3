"""The package's import graph runs one way: no module reaches itself through the modules it imports (lazy
imports inside functions included: they are the same dependency, only deferred), and ``kernels/`` imports
nothing of the engine. Read from the source with ``ast``, so nothing is imported to check it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Folder -> package name, as setup.py maps them.
PACKAGES = {ROOT / "engine": "sava", ROOT / "kernels": "sava.kernels"}


def module_files() -> dict[str, Path]:
    found = {}
    for folder, package in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if "__pycache__" in parts:
                continue
            if folder == ROOT / "engine" and parts and parts[0] == "kernels":
                continue
            name = ".".join((package, *parts))
            found[name.removesuffix(".__init__")] = path
    return found


def imports_of(name: str, path: Path, modules: set[str]) -> set[str]:
    """The package's modules ``name`` imports, anywhere in its source; ``from pkg import mod`` counts as
    ``pkg.mod`` when ``mod`` is a module, else as ``pkg`` itself."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    edges = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # sava.attacks.base.X -> the module that defines X
                target = target.rpartition(".")[0]
            if target and target != name:
                edges.add(target)
    return edges


def graph() -> dict[str, set[str]]:
    files = module_files()
    return {name: imports_of(name, path, set(files)) for name, path in files.items()}


def cycle_in(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the modules along it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_graph_sees_the_package():
    edges = graph()
    expected = {"sava", "sava.cli", "sava.cli.attack", "sava.kernels", "sava.kernels.fused.ssim", "sava.files"}
    assert expected <= set(edges)
    assert "sava.files" in edges["sava.outputs"] and "sava.files" in edges["sava.runner.manifest"]
    # A circle made here is found: the check can fail.
    assert cycle_in({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_module_imports_itself_through_others():
    edges = graph()
    # Package __init__ files re-export their children: a child importing its own package's name is the
    # re-export, not a dependency on the children, so edges from a module to an ancestor package are left out.
    edges = {name: {t for t in targets if not name.startswith(t + ".")} for name, targets in edges.items()}
    assert cycle_in(edges) is None, " -> ".join(cycle_in(edges))


def test_kernels_import_nothing_of_the_engine():
    for name, targets in graph().items():
        if name.startswith("sava.kernels"):
            outside = sorted(t for t in targets if not t.startswith("sava.kernels"))
            assert not outside, f"{name} imports {outside}"
