"""The package's module structure: every module imports on its own in a fresh interpreter, and no
package-internal import circle exists (imports at module level AND inside functions count: a lazy
import that closes a circle is the kind of knot that makes the code hard to split)."""
from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = "zerofwht"
PKG_DIR = os.path.join(ROOT, PKG)


def package_modules() -> dict:
    """Dotted module name -> file, for every .py file of the package."""
    mods = {}
    for dirpath, dirnames, filenames in os.walk(PKG_DIR):
        dirnames[:] = [d for d in dirnames if not d.startswith((".", "__pycache__"))]
        for f in filenames:
            if f.endswith((".so", ".pyd")):  # a compiled extension: a module without imports
                rel = os.path.relpath(os.path.join(dirpath, f.split(".")[0]), ROOT).split(os.sep)
                mods[".".join(rel)] = None
                continue
            if not f.endswith(".py"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), ROOT)[:-3].split(os.sep)
            if rel[-1] == "__init__":
                rel = rel[:-1]
            mods[".".join(rel)] = os.path.join(dirpath, f)
    return mods


def import_graph(mods: dict) -> dict:
    """Module -> set of package modules it imports anywhere in its source (ast, not executed)."""
    graph = {}
    for name, path in mods.items():
        if path is None:
            graph[name] = set()
            continue
        is_pkg = path.endswith("__init__.py")
        package = name if is_pkg else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(open(path).read(), path)):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - (node.level - 1)]
                    base = ".".join(base + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                # "from P import m" imports the submodule P.m when there is one, else a name of P
                subs = [f"{base}.{a.name}" for a in node.names]
                targets = [t for t in subs if t in mods]
                if len(targets) < len(subs):
                    targets.append(base)
            for t in targets:
                if t in mods and t != name:
                    edges.add(t)
        graph[name] = edges
    return graph


def find_cycle(graph: dict):
    """One import circle as a list of modules (first == last), or None."""
    state, stack = {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in state:
                found = visit(t)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_no_import_circle():
    graph = import_graph(package_modules())
    cycle = find_cycle(graph)
    assert cycle is None, "package-internal import circle: " + " -> ".join(cycle)


def test_cycle_finder_finds_a_circle():
    # The checker itself must be able to fail: the circles this package once had.
    graph = {"a._backends": {"a.triton_fwht"}, "a.triton_fwht": {"a.ops"}, "a.ops": {"a._backends"},
             "a.nn": {"a.ops"}}
    assert find_cycle(graph) == ["a._backends", "a.triton_fwht", "a.ops", "a._backends"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_graph_sees_lazy_and_relative_imports(tmp_path):
    pkg = tmp_path / "p"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "x.py").write_text("def f():\n    from . import y\n")
    (pkg / "y.py").write_text("from .sub import z\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "z.py").write_text("from ..x import f\n")
    mods = {"p": str(pkg / "__init__.py"), "p.x": str(pkg / "x.py"), "p.y": str(pkg / "y.py"),
            "p.sub": str(pkg / "sub" / "__init__.py"), "p.sub.z": str(pkg / "sub" / "z.py")}
    graph = import_graph(mods)
    assert graph["p.x"] == {"p.y"} and graph["p.y"] == {"p.sub.z"}
    assert graph["p.sub.z"] == {"p.x"}
    assert find_cycle(graph) == ["p.sub.z", "p.x", "p.y", "p.sub.z"]


def test_every_module_imports_in_a_fresh_interpreter():
    mods = sorted(m for m, path in package_modules().items()
                  if path is not None and not m.endswith("__main__"))
    if importlib.util.find_spec("triton") is None:  # these need triton by design
        mods = [m for m in mods if m not in ("zerofwht.triton_init",)]
    # One interpreter per module would take a minute (torch imports each time); each module is
    # imported first in its own interpreter only when the joint import fails.
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
    proc = subprocess.run([sys.executable, "-c", code, *mods], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.parametrize("module", ["zerofwht._checks", "zerofwht._backends", "zerofwht.ops",
                                    "zerofwht.triton_fwht", "zerofwht.triton_init",
                                    "zerofwht.bench.timing"])
def test_module_imports_first(module):
    """Imported FIRST (before the rest of the package has been set up by someone else)."""
    if "triton" in module and importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed")
    proc = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
