"""No import circle in d2l_shim/ or tools/d2l_tools/, function-level imports included.

The graph is read from the source with ``ast``: an edge for every ``import`` and ``from ...
import`` anywhere in a module (inside functions too) that names another module of these
packages. ``from pkg import name`` is an edge to ``pkg.name`` when that is a module, else to
``pkg``. A test on a scratch copy with one circle added shows that the check sees it.
"""

import ast
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = {"d2l_shim": REPO / "d2l_shim", "d2l_tools": REPO / "tools" / "d2l_tools"}


def module_files(packages):
    """``{module name: path}`` of every .py file of ``packages`` (``{package: folder}``)."""
    modules = {}
    for package, folder in packages.items():
        for path in sorted(Path(folder).rglob("*.py")):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imports_of(name, path, modules):
    """The modules of ``modules`` that module ``name`` imports, anywhere in its code."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, one level up per extra dot
                package = name.split(".") if is_package else name.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            # `import a.b.c` names a.b.c; the nearest enclosing module of ours is the edge.
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(packages):
    modules = module_files(packages)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph):
    """Each import circle of ``graph`` once, as a list of modules that ends where it starts."""
    found, state = [], {}  # state: 1 on the current path, 2 done
    path = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_no_import_circle():
    graph = import_graph(PACKAGES)
    assert "d2l_tools.notebooks" in graph and "d2l_shim.tab" in graph  # the packages were read
    assert cycles(graph) == [], "import circle(s): " + "; ".join(" -> ".join(c) for c in cycles(graph))


def test_the_test_tool_does_not_import_the_notebooks_command():
    # The circle this graph once had: testrun imported notebooks, whose `nbval` imported testrun.
    graph = import_graph(PACKAGES)
    assert "d2l_tools.notebooks" not in graph["d2l_tools.testrun"]
    assert "d2l_tools.testrun" not in graph["d2l_tools.notebooks"]


def test_a_function_level_circle_in_a_scratch_copy_is_found(tmp_path):
    copies = {package: tmp_path / package for package in PACKAGES}
    for package, folder in PACKAGES.items():
        shutil.copytree(folder, copies[package], ignore=shutil.ignore_patterns("__pycache__"))

    def through_checks_and_execute(found):
        return [c for c in found if {"d2l_tools.checks", "d2l_tools.execute"} <= set(c)]

    assert through_checks_and_execute(cycles(import_graph(copies))) == []
    checks = copies["d2l_tools"] / "checks.py"
    # checks is imported by execute; an import of execute inside a function closes a circle.
    checks.write_text(
        checks.read_text() + "\n\ndef _later():\n    from d2l_tools import execute\n\n    return execute\n"
    )
    found = through_checks_and_execute(cycles(import_graph(copies)))
    assert found and all(c[0] == c[-1] for c in found)


def test_relative_imports_are_followed(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from . import b\n")
    (package / "b.py").write_text("def f():\n    from .a import thing\n")
    assert cycles(import_graph({"pkg": package})) == [["pkg.a", "pkg.b", "pkg.a"]]
