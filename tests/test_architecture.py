"""The floor plan: tl_core's subpackages import only downwards, no module circles, deferred imports
say why, and ui/ and tl_core.base load no torch.

Floors, lowest first: base <- data <- models <- training <- trust <- serving <- jobs <- cli.
serving sits above trust because a prediction carries its calibration (trust.calibration).
"""
from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "tl_core"
FLOORS = ("base", "data", "models", "training", "trust", "serving", "jobs", "cli")


def module_name(path: Path) -> str:
    """tl_core/models/sources/hub.py -> models.sources.hub; tl_core/data/__init__.py -> data."""
    parts = path.relative_to(PKG).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(node: ast.ImportFrom | ast.Import, importer: str, is_package: bool) -> list[str]:
    """The tl_core modules (as module_name gives them) an import statement reaches."""
    if isinstance(node, ast.Import):
        return [a.name[len("tl_core."):] for a in node.names if a.name.startswith("tl_core.")]
    if node.level:
        base = importer.split(".") if is_package else importer.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        module = ".".join(base + ([node.module] if node.module else []))
    elif (node.module or "").startswith("tl_core"):
        module = node.module[len("tl_core"):].lstrip(".")
    else:
        return []
    known = modules()
    subs = [f"{module}.{a.name}".lstrip(".") for a in node.names]
    return [s for s in subs if s in known] or ([module] if module else [])


def modules() -> set[str]:
    return {module_name(p) for p in PKG.rglob("*.py")} - {""}


def imports_of(path: Path) -> list[tuple[str, int, bool]]:
    """(tl_core module imported, line, inside a function?) for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name, out = module_name(path), []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                out.extend((m, child.lineno, in_function) for m in imported(child, name, path.stem == "__init__"))
            visit(child, nested)

    visit(tree, False)
    return out


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for path in sorted(PKG.rglob("*.py")):
        name = module_name(path)
        graph[name] = {m for m, _, _ in imports_of(path) if m and m != name}
    return graph


def floor(module: str) -> int:
    return FLOORS.index(module.split(".")[0]) if module.split(".")[0] in FLOORS else len(FLOORS)


def upward(graph: dict[str, set[str]]) -> list[str]:
    """Imports from a module to a module on a higher floor (the package's own __init__ excluded)."""
    return sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets
                  if a and floor(b) > floor(a) and not b.startswith(a + "."))


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


def test_the_checks_can_fail():
    # made-up graphs: a circle of three, and a data module importing a jobs module
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []
    assert upward({"data.audit": {"jobs.runs", "base.config"}}) == ["data.audit -> jobs.runs"]
    assert upward({"serving.predict": {"trust.calibration"}}) == []


def test_tl_core_has_no_import_circles():
    graph = import_graph()
    assert len(graph) > 40 and "jobs.runs" in graph["jobs.job"]  # the graph really was read
    assert circles(graph) == []


def test_subpackages_import_only_downwards():
    graph = import_graph()
    assert "base.atomic" in graph["training.train"]  # relative and absolute imports both read
    assert upward(graph) == []


def test_every_module_lives_in_a_subpackage():
    loose = sorted(p.name for p in PKG.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert loose == []
    assert {p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == set(FLOORS)


@pytest.mark.parametrize("package", [f for f in FLOORS if f not in ("base", "cli")])
def test_each_subpackage_names_an_api_that_resolves(package):
    """Every name the lazy table of a subpackage's __init__ promises is really there."""
    mod = importlib.import_module(f"tl_core.{package}")
    table = mod.__getattr__.__closure__[1].cell_contents  # lazy_exports(package, table)
    assert isinstance(table, dict) and table
    for name in table:
        assert getattr(mod, name) is not None, name
    with pytest.raises(AttributeError):
        getattr(mod, "no_such_name")


def test_imports_inside_functions_say_why():
    """An import inside a function only defers a heavy optional dependency, and a comment says so."""
    bare = []
    for path in sorted(PKG.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        tree = ast.parse("\n".join(lines))
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    line = lines[node.lineno - 1]
                    if "#" not in line and "#" not in lines[node.end_lineno - 1]:
                        bare.append(f"{path.relative_to(PKG)}:{node.lineno}: {line.strip()}")
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
    base = sorted(f"tl_core.{module_name(p)}" for p in (PKG / "base").glob("*.py"))
    assert "tl_core.base.messages" in base and "tl_core.base.config" in base
    code = ("import importlib, json, sys\n"
            f"for m in {base!r}: importlib.import_module(m)\n"
            "print(json.dumps({'torch': 'torch' in sys.modules}))")
    assert _fresh_interpreter(code) == {"torch": False}


def test_python_m_tl_core_is_the_cli_package():
    """`python -m tl_core` dispatches to tl_core/cli (one module per command) and holds no command itself."""
    tree = ast.parse((PKG / "__main__.py").read_text(encoding="utf-8"))
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    assert any(isinstance(n, ast.ImportFrom) and n.module == "tl_core.cli.main" for n in ast.walk(tree))
    assert not (PKG / "cli" / "__main__.py").exists()


PICKLING = {"dump", "dumps", "load", "loads", "Pickler", "Unpickler"}


def pickle_uses(source: str) -> list[int]:
    """Lines that pickle or unpickle (pickle.load..., `from pickle import`, cloudpickle, dill);
    naming pickle.UnpicklingError to refuse an unsafe weights file is not one."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in PICKLING and getattr(node.value, "id", "") == "pickle":
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module in ("pickle", "cloudpickle", "dill"):
            lines.append(node.lineno)
        elif isinstance(node, ast.Import) and {a.name for a in node.names} & {"cloudpickle", "dill"}:
            lines.append(node.lineno)
    return sorted(lines)


def test_no_pickles_anywhere():
    """DESIGN.md: no pickles. What crosses a process or a file is JSON, safetensors or ONNX."""
    assert pickle_uses("import pickle\nx = pickle.loads(b'')\nfrom pickle import dumps\n") == [2, 3]
    assert pickle_uses("import pickle\ntry:\n    pass\nexcept pickle.UnpicklingError:\n    pass\n") == []
    files = [ROOT / "app.py"] + [p for d in ("tl_core", "ui", "app_pages", "bench") for p in (ROOT / d).rglob("*.py")]
    found = {str(p.relative_to(ROOT)): pickle_uses(p.read_text(encoding="utf-8")) for p in files}
    assert {name: lines for name, lines in found.items() if lines} == {}


def test_the_reliability_report_holds_every_hand_written_section():
    """docs/RELIABILITY.md is generated (`python -m tests.reliability`) with docs/reliability/*.md
    appended: a section written into the report alone would vanish at the next regeneration."""
    report = (ROOT / "docs" / "RELIABILITY.md").read_text(encoding="utf-8")
    parts = sorted((ROOT / "docs" / "reliability").glob("*.md"))
    assert parts and [p.name for p in parts if p.read_text(encoding="utf-8").strip() not in report] == []
