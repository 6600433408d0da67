"""The chapter's own model code, read from its notebooks, for the bench and the parity test.

    from chapter_models import chapter_code
    scratch = chapter_code("mlp-scratch", "pytorch")   # a module: MLPScratch, relu, cross_entropy, ...
    model = scratch.MLPScratch(num_inputs=784, num_outputs=10, num_hiddens=256, lr=0.1)

``chapter_code(notebook, framework)`` takes the code cells of ``chapter_mlp/<notebook>.ipynb``
that run under ``framework`` (its ``%%tab`` cells and the untabbed ones), keeps their imports,
function and class definitions (decorated ones included, so ``@d2l.add_to_class`` methods
land on their class), and runs them, in notebook order, in a fresh module. Everything else
in a cell (training runs, printed checks, seeds, magics) is left out. So the bench and the
parity test train exactly the classes a reader sees, and cannot drift from them.

Only the standard library reads the notebook (no nbformat): this also runs in .venv-mxnet.
"""

import ast
import inspect
import json
import linecache
import sys
import types
from pathlib import Path

from d2l_shim import FRAMEWORKS
from d2l_shim.tab import is_tab_line, source_tab

CHAPTER = Path(__file__).resolve().parents[1] / "chapter_mlp"
# Top-level statements that define something; the rest of a cell is not model code.
DEFINITIONS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)

# Model kind -> (notebook, class) of the chapter that defines it; the bench times the first two,
# the parity test trains all three.
CHAPTER_MODELS = {
    "scratch": ("mlp-scratch", "MLPScratch"),
    "concise": ("mlp-concise", "MLP"),
    "concise-scratch": ("mlp-concise", "MLPScratch"),
}

_loaded = {}


def framework_cells(notebook_path, framework):
    """(cell index, source) of the code cells that run under ``framework``, marker line blanked.

    The marker line becomes an empty line (as the ``%%tab`` extension does), so line numbers
    in a traceback are those of the notebook's cell.
    """
    cells = json.loads(Path(notebook_path).read_text(encoding="utf-8"))["cells"]
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        if framework not in source_tab(source).frameworks:
            continue
        first, _, rest = source.partition("\n")
        yield index, "\n" + rest if is_tab_line(first) else source


def definitions(source, filename):
    """The module of ``source``'s top-level definitions; a cell holding IPython magics yields none.

    A magic line (``%load_ext``, ``%matplotlib``) is not Python; cells with one set up the
    notebook and define no model code.
    """
    if any(line.lstrip().startswith(("%", "!")) for line in source.splitlines()):
        return None
    tree = ast.parse(source, filename=filename)
    tree.body = [node for node in tree.body if isinstance(node, DEFINITIONS)]
    return tree if tree.body else None


def chapter_code(notebook, framework):
    """A module holding the definitions of ``chapter_mlp/<notebook>.ipynb`` under ``framework``.

    Loaded once per process and notebook; the module is also registered in ``sys.modules``
    (flax and dataclasses look a class's module up there).
    """
    if framework not in FRAMEWORKS:
        raise ValueError(f"unknown framework {framework!r}: use one of {', '.join(FRAMEWORKS)}")
    path = CHAPTER / f"{notebook}.ipynb"
    if not path.exists():
        names = ", ".join(sorted(p.stem for p in CHAPTER.glob("*.ipynb")))
        raise FileNotFoundError(f"{path} does not exist: the chapter's notebooks are {names}")
    key = (notebook, framework)
    if key not in _loaded:
        name = f"chapter_mlp.{notebook.replace('-', '_')}.{framework}"
        module = types.ModuleType(name, f"Definitions of {path.name} under {framework}")
        sys.modules[name] = module
        try:
            for index, source in framework_cells(path, framework):
                filename = f"{path.name}, cell {index}"
                tree = definitions(source, filename)
                if tree is not None:
                    # The cell's text where inspect looks for source (as IPython does for a
                    # cell): tracebacks show its lines, and TensorFlow's AutoGraph can convert
                    # its functions instead of warning that it cannot read them.
                    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
                    exec(compile(tree, filename, "exec"), module.__dict__)
        except BaseException:
            del sys.modules[name]  # no half-loaded module for the next caller
            raise
        _loaded[key] = module
    return _loaded[key]


def model_class(notebook, framework, class_name):
    """The class ``class_name`` that ``notebook`` defines under ``framework``, with a clear error if none."""
    module = chapter_code(notebook, framework)
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        defined = sorted(k for k, v in vars(module).items() if isinstance(v, type) and v.__module__ == module.__name__)
        raise LookupError(
            f"{notebook}.ipynb defines no class {class_name} under {framework} "
            f"(it defines {', '.join(defined) or 'no class'})"
        )
    return cls


def accepted(cls, arguments):
    """The items of ``arguments`` that ``cls(...)`` takes (a flax class's fields, another's ``__init__``).

    The chapter's classes differ in what they ask for (``MLP`` has no ``num_inputs``).
    """
    parameters = inspect.signature(cls).parameters
    return {name: value for name, value in arguments.items() if name in parameters}
