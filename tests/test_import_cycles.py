"""No import circles inside tools/yolo11_pose: every `from .x import ...` / `from . import x` edge counts, at module
level and inside functions (a lazy import hides a circle from Python, not from a reader).

Code under `if __name__ == "__main__":` is left out: it runs only when the module is the script (`python -m ...`),
which Python loads as a separate module named __main__, so it closes no circle (coverage.py's regeneration entry
imports the executor there, while the executor imports coverage)."""
from __future__ import annotations

import ast
from pathlib import Path

from .conftest import REPO

PKG = REPO / "tools" / "yolo11_pose"
NAME = PKG.name


def _modules() -> dict[str, Path]:
    out = {}
    for f in sorted(PKG.rglob("*.py")):
        parts = list(f.relative_to(PKG).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join([NAME, *parts])] = f
    return out


def _is_main_guard(node: ast.AST) -> bool:
    t = getattr(node, "test", None)
    return (isinstance(node, ast.If) and isinstance(t, ast.Compare) and isinstance(t.left, ast.Name)
            and t.left.id == "__name__" and any(isinstance(c, ast.Constant) and c.value == "__main__"
                                                 for c in t.comparators))


def _imports(tree: ast.AST):
    """Every Import/ImportFrom node, at any depth, except under a `__main__` guard."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if _is_main_guard(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def import_edges() -> dict[str, set[str]]:
    mods = _modules()
    edges = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif node.level == 0:  # `from yolo11_pose.espdl import executor` names the module executor too
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)] if node.module else []
            else:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
                # `from . import x` names a module; `from .m import f` names m (and m.f if that is a module).
                names = [stem] + [f"{stem}.{a.name}" for a in node.names]
            for n in names:
                # importing a.b.c also runs a and a.b; the package's own __init__ is everyone's, so it is left out
                while n and n not in mods:
                    n = n.rpartition(".")[0]
                if n and n != mod and n != NAME:
                    edges[mod].add(n)
    return edges


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One shortest circle through each strongly connected group of modules (Tarjan, then a breadth-first search)."""
    index, low, stack, on, groups = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    cycles = []
    for group in groups:
        start = min(group)
        prev, todo = {start: None}, [start]
        while todo:
            v = todo.pop(0)
            for w in sorted(edges[v] & group):
                if w == start:
                    path = [v]
                    while prev[path[-1]] is not None:
                        path.append(prev[path[-1]])
                    cycles.append([*reversed(path), start])  # start ... v, start
                    todo = []
                    break
                if w not in prev:
                    prev[w] = v
                    todo.append(w)
    return cycles


def test_the_walker_sees_lazy_and_relative_imports(tmp_path, monkeypatch):
    """A circle made only of a function-level import is found, and printed."""
    pkg = tmp_path / NAME
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import f\n")
    (pkg / "b.py").write_text("def f():\n    from . import a\n")
    (pkg / "c.py").write_text("if __name__ == '__main__':\n    from .a import f\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["PKG"]), "PKG", pkg)
    edges = import_edges()
    assert edges[f"{NAME}.c"] == set()
    assert find_cycles(edges) == [[f"{NAME}.a", f"{NAME}.b", f"{NAME}.a"]]


def test_no_import_circles():
    edges = import_edges()
    assert len(edges) > 20 and f"{NAME}.espdl.executor" in edges[f"{NAME}.espdl.memory"]
    cycles = find_cycles(edges)
    assert not cycles, "import circles in tools/yolo11_pose:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_readme_layout_matches_the_package_folders():
    """README's "Repository layout": one row per folder of the package, naming every module in it (and nothing
    that is not there), so that a newcomer's map of the code stays true."""
    import re

    text = (REPO / "README.md").read_text()
    section = text.split("## Repository layout", 1)[1].split("\n## ", 1)[0]
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `tools/yolo11_pose/(\w+)/` \| (.*) \|$", section, re.M)}
    folders = {d.name for d in PKG.iterdir() if (d / "__init__.py").is_file() and d.name != "cfg"}
    assert set(rows) == folders, f"README rows {sorted(rows)} vs package folders {sorted(folders)}"
    for folder, row in rows.items():
        named = set(re.findall(r"`(\w+)`", row)) - {"host"}
        modules = {f.stem for f in (PKG / folder).glob("*.py") if f.stem != "__init__"}
        assert named == modules, f"{folder}/: README names {sorted(named)}, the folder has {sorted(modules)}"
