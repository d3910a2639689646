"""The layers of ARCHITECTURE.md hold: import-linter's contracts (setup.cfg), no import cycle
between any two modules, and the lazy API's type stub lists what ``featx`` exports."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_are_kept():
    """Every import, at the top of a module or inside a function, points down a layer."""
    linter = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(linter).exists():
        pytest.skip("import-linter is not installed (pip install '.[test]')")
    done = subprocess.run([linter, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout and "layers" in (REPO / "setup.cfg").read_text()


def test_no_module_imports_itself_back():
    """No strongly connected set of modules in featx's import graph (grimp reads every import)."""
    grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter (pip install '.[test]')")
    graph = grimp.build_graph("featx", cache_dir=None)
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(module):
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    assert cycles == []


def test_the_type_stub_lists_every_lazy_export():
    init = (REPO / "featx" / "__init__.py").read_text()
    exports = ast.literal_eval(init.split("_EXPORTS = ", 1)[1].split("\n}\n", 1)[0] + "\n}")
    stub = ast.parse((REPO / "featx" / "__init__.pyi").read_text())
    stubbed = {}
    for node in stub.body:
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                stubbed[alias.asname or alias.name] = "featx" + ("." + node.module if node.module else "")
    for name, module in exports.items():
        assert stubbed.get(name) == module, name
    declared = next(n for n in stub.body if isinstance(n, ast.Assign) and n.targets[0].id == "__all__")
    assert sorted(ast.literal_eval(declared.value)) == sorted(["__version__", *exports])
