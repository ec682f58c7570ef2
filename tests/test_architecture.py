"""The floor plan: tl_core has no import circles, deferred imports say why, ui/ loads no torch."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "tl_core"


def _module_name(path: Path) -> str:
    return path.stem


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(tl_core module imported, line, inside a function?) for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.ImportFrom):
                out.extend((m, child.lineno, in_function) for m in _targets(child))
            elif isinstance(child, ast.Import):
                out.extend((a.name.split(".")[1], child.lineno, in_function)
                           for a in child.names if a.name.startswith("tl_core."))
            visit(child, nested)

    visit(tree, False)
    return out


def _targets(node: ast.ImportFrom) -> list[str]:
    """tl_core modules an ImportFrom reaches: `from .x import y`, `from . import x`, `from tl_core.x ...`."""
    if node.level == 0 and not (node.module or "").startswith("tl_core"):
        return []
    if node.level > 1:
        return []
    module = node.module or ""
    if module.startswith("tl_core"):
        module = module[len("tl_core"):].lstrip(".")
    if module:
        return [module.split(".")[0]]
    modules = {p.stem for p in PKG.glob("*.py")}
    return [a.name for a in node.names if a.name in modules]  # from . import runs


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for path in sorted(PKG.glob("*.py")):
        name = _module_name(path)
        graph[name] = {m for m, _, _ in _imports(path) if m != "__init__" and m != name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def connect(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_the_circle_finder_finds_a_circle():
    # the test below must be able to fail: a made-up graph with a circle of three
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_tl_core_has_no_import_circles():
    graph = import_graph()
    assert len(graph) > 15 and "runs" in graph["job"]  # the graph really was read
    assert circles(graph) == []


def test_imports_inside_functions_say_why():
    """An import inside a function only defers a heavy optional dependency, and a comment says so."""
    bare = []
    for path in sorted(PKG.glob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        tree = ast.parse("\n".join(lines))
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    line = lines[node.lineno - 1]
                    if "#" not in line:
                        bare.append(f"{path.name}:{node.lineno}: {line.strip()}")
    assert bare == [], "imports inside functions without a reason:\n" + "\n".join(sorted(set(bare)))


def _fresh_interpreter(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _app_modules() -> list[str]:
    """Everything app.py imports, and every ui/ module."""
    tree = ast.parse((ROOT / "app.py").read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    names.update(f"ui.{p.stem}" for p in (ROOT / "ui").glob("*.py") if p.stem != "__init__")
    return sorted(n for n in names if n.split(".")[0] in ("ui", "tl_core"))


def test_app_and_ui_load_without_torch():
    modules = _app_modules()
    assert "ui.state" in modules and "ui.widgets" in modules
    code = ("import importlib, json, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "print(json.dumps({'torch': 'torch' in sys.modules, 'timm': 'timm' in sys.modules}))")
    assert _fresh_interpreter(code) == {"torch": False, "timm": False}


def test_ground_floor_loads_without_torch():
    code = ("import json, sys\n"
            "import tl_core.messages, tl_core.status, tl_core.atomic, tl_core.config, tl_core.events\n"
            "print(json.dumps({'torch': 'torch' in sys.modules}))")
    assert _fresh_interpreter(code) == {"torch": False}
