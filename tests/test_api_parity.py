"""d2l_shim keeps d2l 1.0.3's names and signatures, so the chapter's code means the same.

d2l's sources are read with ``ast`` from the wheel that ``make setup`` downloads into
.cache/ (never installed or imported). Checked per framework:

* the core API (CORE_NAMES, and the tensor aliases d2l defines) exists in our module;
  functions and classes (their ``__init__``) take every parameter d2l's take, of the same
  kind and, for positional ones, at the same position (extra optional ones are fine);
  the core classes define every method d2l's define, with compatible signatures, and
  derive from the same core classes; aliases such as ``float32`` are the same object;
* every ``d2l.<name>`` that the chapter's notebooks use in that framework's cells (and in
  shared cells) is a d2l 1.0.3 name, exists in our module, and has a compatible signature.

Our side is read with ``inspect``: in this interpreter for the frameworks it has, and by
running this file as a script under the other environment's Python (MXNet's) otherwise:

    python tests/test_api_parity.py FRAMEWORK REQUEST.json RESULT.json
"""

import ast
import importlib
import inspect
import json
import subprocess
import sys
import zipfile
from functools import cache
from pathlib import Path

import pytest
from conftest import REPO, frameworks_checked, frameworks_under_test, python_for

from d2l_shim import FRAMEWORK_INFO, FRAMEWORKS

if __name__ != "__main__":  # the script mode at the bottom runs in .venv-mxnet, which has no d2l_tools
    from d2l_tools import chapter

WHEEL = REPO / ".cache" / "d2l-1.0.3-py3-none-any.whl"
D2L_SOURCE = {
    "pytorch": "d2l/torch.py",
    "mxnet": "d2l/mxnet.py",
    "tensorflow": "d2l/tensorflow.py",
    "jax": "d2l/jax.py",
}
NOTEBOOKS = [path.name for path in chapter.notebooks()] if __name__ != "__main__" else []  # the toctree
CORE_CLASSES = (
    "HyperParameters",
    "ProgressBoard",
    "Module",
    "Classifier",
    "Trainer",
    "SGD",
    "DataModule",
    "FashionMNIST",
)
CORE_NAMES = CORE_CLASSES + (
    "plot",
    "plt",
    "set_figsize",
    "set_axes",
    "use_svg_display",
    "show_images",
    "add_to_class",
    "try_gpu",
    "try_all_gpus",
    "gpu",
    "cpu",
    "num_gpus",
)
# Checked when d2l defines them for the framework (not every framework has every alias).
ALIASES = (
    "float32",
    "arange",
    "zeros",
    "ones",
    "normal",
    "matmul",
    "exp",
    "log",
    "sigmoid",
    "tanh",
    "reshape",
    "get_seed",
    "get_key",
)
# Names the notebooks may use although d2l 1.0.3 lacks them: name -> why. Keep it empty if
# possible: a reader who installs the real d2l package could not run such a cell.
SHIM_ONLY_NAMES = {}
# Methods whose d2l 1.0.3 signature is itself a slip: only their existence is checked.
D2L_SLIPS = {("jax", "SGD", "__call__"): "d2l defines it without `self`, so calling it fails"}
# Where d2l_shim means something else than d2l 1.0.3 on purpose: (framework or "all", d2l name)
# -> what differs and why. The one list of such differences (docs link here); everything not
# listed behaves as d2l's, which tests/test_semantics.py checks for training and evaluation
# mode, JAX's keys and Keras's `training=`. d2l's slips that we do not repeat are listed too.
DELIBERATE_DIFFERENCES = {
    ("all", "Trainer"): "fit prints one line per epoch with the means of what the model plotted "
    "(d2l prints nothing), so a notebook's text output shows the run; and Trainer(max_epochs=...) "
    "refuses a negative or non-integer count at once (d2l's loop runs zero times and says nothing)",
    ("all", "FashionMNIST"): "read from the local cache (fetched once, verified) rather than "
    "downloaded through torchvision/keras/gluon, shuffled by a generator seeded with `seed` so "
    "every framework sees the same minibatches, and batch_size must be a whole number >= 1",
    ("all", "ProgressBoard"): "redraws at a bounded rate and ends with one static figure, loss and "
    "accuracy on panels of their own (d2l redraws after every point: slower than the training)",
    ("tensorflow", "Trainer"): "a Classifier's default steps run as tf.function graphs, as Keras's own "
    "fit does (d2l runs them eagerly); d2l.run_eagerly() or D2L_EAGER=1 runs them eagerly",
    ("tensorflow", "Module"): "a call without training= passes self.training (set by the trainer) to "
    "Keras, so Keras layers inside, such as Dropout, drop out in training; in d2l 1.0.3 they never "
    "do during fit (Keras defaults to inference when training= is not given), a d2l slip",
    ("jax", "Trainer"): "the steps switch mode by applying a clone of the model with `training` set "
    "(state.apply_fn) instead of setting model.training: jit caches on the module's fields and misses "
    "a change made after its first call, so in d2l 1.0.3 the validation loss reuses the training "
    "trace with dropout on; the whole default step is one jit call (d2l jits the loss and accuracy "
    "only; d2l.run_eagerly() turns jit off); gradient_clip_val clips (d2l's JAX loop never calls "
    "clip_gradients); fit's shape-only first batch comes from the validation loader, so the "
    "training order is the same in every framework",
    ("jax", "Classifier"): "loss passes the dropout key as d2l's does but not batch_stats: the state "
    "of batch normalization, which d2l's last loss also applies and updates, is not kept (no model "
    "of this chapter has it)",
    ("jax", "get_key"): "takes an optional seed (get_key(0)); without one it draws one with get_seed as d2l's does",
    ("jax", "DataModule"): "minibatches are gathered from in-memory arrays with numpy indices (d2l "
    "goes through tf.data and tensorflow_datasets, which the JAX environment does not install)",
}
VARIADIC = ("VAR_POSITIONAL", "VAR_KEYWORD")
POSITIONAL = ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD")


# ---------------------------------------------------------------------------------------
# d2l 1.0.3, read with ast


def _ast_params(arguments):
    """[(name, kind, has_default)] of an ast.arguments, in the order inspect lists them."""
    positional = [(a, "POSITIONAL_ONLY") for a in arguments.posonlyargs] + [
        (a, "POSITIONAL_OR_KEYWORD") for a in arguments.args
    ]
    first_default = len(positional) - len(arguments.defaults)
    params = [(a.arg, kind, i >= first_default) for i, (a, kind) in enumerate(positional)]
    if arguments.vararg:
        params.append((arguments.vararg.arg, "VAR_POSITIONAL", False))
    params += [
        (a.arg, "KEYWORD_ONLY", default is not None) for a, default in zip(arguments.kwonlyargs, arguments.kw_defaults)
    ]
    if arguments.kwarg:
        params.append((arguments.kwarg.arg, "VAR_KEYWORD", False))
    return params


def _base_name(node):
    """'Module' for ``d2l.Module`` or ``Module`` as a base class; None for anything else."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "d2l":
        return node.attr
    return node.id if isinstance(node, ast.Name) else None


def _dotted(node):
    """'torch.float32' for an expression like ``torch.float32``; None for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return ".".join([node.id, *reversed(parts)]) if isinstance(node, ast.Name) else None


@cache
def d2l_api(framework):
    """Top-level names of d2l 1.0.3's module for ``framework``.

    name -> {"kind": "function" | "class" | "alias" | "import", "params": [...] (functions; a class's
    __init__ if it defines one), "methods": {name: params}, "bases": [core class names],
    "target": the module path an alias stands for (e.g. 'torch.float32'), or None}.
    Where d2l defines a name twice, the last definition wins, as when Python runs the file.
    """
    if not WHEEL.exists():
        pytest.fail(
            f"{WHEEL.relative_to(REPO)} is missing: run `make setup` (it runs "
            f"`pip download --no-deps d2l==1.0.3 -d .cache`)"
        )
    with zipfile.ZipFile(WHEEL) as wheel:
        tree = ast.parse(wheel.read(D2L_SOURCE[framework]).decode())
    imports, api = {}, {}
    for node in tree.body:
        if isinstance(node, ast.Import):  # `import numpy as np` binds np; `import a.b` binds a
            for a in node.names:
                bound = a.asname or a.name.split(".")[0]
                imports[bound] = a.name if a.asname else bound
                api[bound] = {"kind": "import"}  # such as d2l.np: only its existence is checked
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                imports[a.asname or a.name] = f"{node.module}.{a.name}"
                api[a.asname or a.name] = {"kind": "import"}  # such as d2l.plt
        elif isinstance(node, ast.FunctionDef):
            api[node.name] = {"kind": "function", "params": _ast_params(node.args)}
        elif isinstance(node, ast.ClassDef):
            methods = {item.name: _ast_params(item.args) for item in node.body if isinstance(item, ast.FunctionDef)}
            api[node.name] = {
                "kind": "class",
                "params": methods.pop("__init__", None),
                "methods": methods,
                "bases": [b for b in map(_base_name, node.bases) if b in CORE_CLASSES],
            }
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            dotted = _dotted(node.value)
            head, _, rest = (dotted or "").partition(".")
            target = f"{imports[head]}.{rest}" if dotted and head in imports and rest else None
            api[node.targets[0].id] = {"kind": "alias", "target": target}
    return api


# ---------------------------------------------------------------------------------------
# d2l_shim, read with inspect (runs in the framework's own environment)


def _params(obj):
    return [
        [p.name, p.kind.name, p.default is not inspect.Parameter.empty]
        for p in inspect.signature(obj).parameters.values()
    ]


def _resolve(path):
    """The object at a dotted path such as 'mxnet.np.float32' (longest importable module first)."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            obj = getattr(obj, attribute)
        return obj
    raise ImportError(path)


def describe(framework, request):
    """What our module offers for each requested name (see ``d2l_api`` for the request keys).

    Returns name -> {"exists", "params" (or "params_error"), "methods": {name: params or
    None if missing}, "bases": {base: is a subclass}, "same_as_target"} as plain JSON data.
    """
    module = importlib.import_module(FRAMEWORK_INFO[framework].shim_module)
    found = {}
    for name, wanted in request.items():
        if not hasattr(module, name):
            found[name] = {"exists": False}
            continue
        obj, info = getattr(module, name), {"exists": True}
        if wanted.get("params"):
            try:
                info["params"] = _params(obj.__init__ if inspect.isclass(obj) else obj)
            except (TypeError, ValueError) as err:
                info["params_error"] = f"{type(err).__name__}: {err}"
        if wanted.get("methods"):
            info["methods"] = {m: _params(getattr(obj, m)) if hasattr(obj, m) else None for m in wanted["methods"]}
        if wanted.get("bases"):
            info["bases"] = {
                base: inspect.isclass(obj) and hasattr(module, base) and issubclass(obj, getattr(module, base))
                for base in wanted["bases"]
            }
        if wanted.get("target"):
            try:
                target = _resolve(wanted["target"])
                info["same_as_target"] = bool(obj is target or obj == target)
            except (ImportError, AttributeError) as err:
                info["same_as_target"] = f"cannot resolve {wanted['target']}: {err}"
        found[name] = info
    return found


def request_for(framework, names):
    """What to ask ``describe`` about ``names``, given what d2l defines."""
    api = d2l_api(framework)
    request = {}
    for name in names:
        theirs = api.get(name, {})
        request[name] = {
            "params": theirs.get("params") is not None,
            "methods": sorted(theirs.get("methods", {})) if name in CORE_CLASSES else [],
            "bases": theirs.get("bases", []),
            "target": theirs.get("target"),
        }
    return request


_described = {}


def ours(framework, tmp_path_factory):
    """``describe`` of every name any check needs, computed once per framework."""
    if framework not in _described:
        names = sorted(set(CORE_NAMES) | set(ALIASES) | set(notebook_names_all(framework)))
        request = request_for(framework, names)
        if framework in frameworks_under_test():
            _described[framework] = describe(framework, request)
        else:
            folder = tmp_path_factory.mktemp(f"api-{framework}")
            (folder / "request.json").write_text(json.dumps(request))
            done = subprocess.run(
                [python_for(framework), __file__, framework, str(folder / "request.json"), str(folder / "result.json")],
                capture_output=True,
                text=True,
                timeout=300,
            )
            if done.returncode != 0:
                pytest.fail(f"describing d2l_shim for {framework} failed:\n{done.stderr[-3000:]}")
            _described[framework] = json.loads((folder / "result.json").read_text())
    return _described[framework]


# ---------------------------------------------------------------------------------------
# comparing


def incompatibilities(theirs, ours_params):
    """Why a function with parameters ``ours_params`` cannot stand in for d2l's ``theirs``."""
    problems = []
    index_of = {name: i for i, (name, _, _) in enumerate(ours_params)}
    our_kinds = {kind for _, kind, _ in ours_params}
    for position, (name, kind, has_default) in enumerate(theirs):
        if kind in VARIADIC:
            if kind not in our_kinds:
                problems.append(f"takes no {'*' if kind == 'VAR_POSITIONAL' else '**'}{name}")
            continue
        if name not in index_of:
            problems.append(f"lacks parameter {name!r}")
            continue
        _, our_kind, our_default = ours_params[index_of[name]]
        if our_kind != kind:
            problems.append(f"{name!r} is {our_kind}, d2l's is {kind}")
        elif kind in POSITIONAL and index_of[name] != position:
            problems.append(f"{name!r} is parameter {index_of[name]}, d2l's is parameter {position}")
        if has_default and not our_default:
            problems.append(f"{name!r} is required, d2l's has a default")
    their_names = {name for name, _, _ in theirs}
    problems += [
        f"extra required parameter {name!r}"
        for name, kind, has_default in ours_params
        if name not in their_names and kind not in VARIADIC and not has_default
    ]
    return problems


def problems_with(framework, name, found):
    """Everything that keeps our ``name`` from matching d2l 1.0.3's, as readable lines."""
    theirs = d2l_api(framework)[name]
    if not found["exists"]:
        return [f"{name}: missing from d2l_shim's {framework} module"]
    problems = []
    if theirs.get("params") is not None:
        if "params_error" in found:
            problems.append(f"{name}: cannot read our signature ({found['params_error']})")
        else:
            what = f"{name}.__init__" if theirs["kind"] == "class" else name
            problems += [f"{what}: {p}" for p in incompatibilities(theirs["params"], found["params"])]
    for method, params in found.get("methods", {}).items():
        if params is None:
            problems.append(f"{name}.{method}: missing (d2l's {name} defines it)")
        elif (framework, name, method) not in D2L_SLIPS:
            problems += [f"{name}.{method}: {p}" for p in incompatibilities(theirs["methods"][method], params)]
    problems += [
        f"{name}: not a subclass of {base} (d2l's is)" for base, ok in found.get("bases", {}).items() if ok is not True
    ]
    same = found.get("same_as_target", True)
    if same is not True:
        problems.append(
            f"{name}: is not {theirs['target']} as in d2l" + (f" ({same})" if isinstance(same, str) else "")
        )
    return problems


# ---------------------------------------------------------------------------------------
# the chapter's notebooks


def notebook_cells(path):
    """[(frameworks, source without magic lines, cell number)] of a notebook's code cells."""
    from d2l_shim.tab import is_tab_line, parse_tab_line

    cells = []
    for number, cell in enumerate(json.loads(path.read_text())["cells"], start=1):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        lines = source.splitlines()
        frameworks = FRAMEWORKS
        if lines and is_tab_line(lines[0]):
            frameworks = parse_tab_line(lines[0])
        # Blank out magics and shell lines (keeping line numbers) so the rest parses as Python.
        code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in lines)
        cells.append((frameworks, code, number))
    return cells


def d2l_names_used(path, framework):
    """The ``d2l.<name>`` names that the cells run under ``framework`` use."""
    names = set()
    for frameworks, code, number in notebook_cells(path):
        if framework not in frameworks:
            continue
        try:
            tree = ast.parse(code)
        except SyntaxError as err:
            pytest.fail(f"{path.name} code cell {number} is not valid Python: {err}")
        names |= {
            node.attr
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "d2l"
        }
    return names


def notebook_names_all(framework):
    return set().union(*(d2l_names_used(path, framework) for path in notebook_paths()))


def notebook_paths():
    return chapter.notebooks()


# ---------------------------------------------------------------------------------------
# tests


def test_each_deliberate_difference_names_a_d2l_name_we_offer():
    """The list cannot rot: each entry names a framework and a name that d2l 1.0.3 defines."""
    for framework, name in DELIBERATE_DIFFERENCES:
        frameworks = FRAMEWORKS if framework == "all" else (framework,)
        assert all(name in d2l_api(fw) for fw in frameworks), (framework, name)


def test_reading_d2l_finds_its_core_api():
    """The ast reading itself: known facts of d2l 1.0.3, so a broken parser cannot pass silently."""
    torch_api, jax_api = d2l_api("pytorch"), d2l_api("jax")
    assert torch_api["Trainer"]["params"] == [
        ("self", "POSITIONAL_OR_KEYWORD", False),
        ("max_epochs", "POSITIONAL_OR_KEYWORD", False),
        ("num_gpus", "POSITIONAL_OR_KEYWORD", True),
        ("gradient_clip_val", "POSITIONAL_OR_KEYWORD", True),
    ]
    assert torch_api["Classifier"]["bases"] == ["Module"]
    assert torch_api["float32"]["target"] == "torch.float32"
    assert d2l_api("mxnet")["zeros"]["target"] == "mxnet.np.zeros"
    assert jax_api["Module"]["params"] is None  # a flax dataclass: no __init__ of its own
    assert torch_api["plt"]["kind"] == "import"
    assert "VAR_KEYWORD" in {kind for _, kind, _ in jax_api["Module"]["methods"]["forward"]}
    assert all(name in d2l_api(fw) for fw in FRAMEWORKS for name in CORE_NAMES)


def test_compatibility_rules():
    def sig(*params):
        """'x' positional, 'x=' with a default, '*x' and '**x' variadic."""
        kinds = {"**": "VAR_KEYWORD", "*": "VAR_POSITIONAL"}
        return [
            (p.strip("*="), kinds.get(p[: len(p) - len(p.lstrip("*"))], "POSITIONAL_OR_KEYWORD"), p.endswith("="))
            for p in params
        ]

    d2l = sig("self", "x", "y=")
    assert incompatibilities(d2l, sig("self", "x", "y=", "z=")) == []
    assert incompatibilities(d2l, sig("self", "y=", "x")) != []  # swapped positions
    assert incompatibilities(d2l, sig("self", "x", "y")) != []  # y became required
    assert incompatibilities(d2l, sig("self", "x")) != []  # y missing
    assert incompatibilities(d2l, sig("self", "x", "y=", "z")) != []  # extra required
    assert incompatibilities(sig("self", "*args", "**kw"), sig("self", "*a", "**k")) == []
    assert incompatibilities(sig("self", "**kw"), sig("self", "*kw")) != []  # wrong kind of variadic


@pytest.mark.parametrize("framework", frameworks_checked())
def test_core_api_matches_d2l(framework, tmp_path_factory):
    found = ours(framework, tmp_path_factory)
    api = d2l_api(framework)
    names = [n for n in CORE_NAMES + ALIASES if n in api]
    problems = [p for name in names for p in problems_with(framework, name, found[name])]
    assert not problems, f"d2l_shim's {framework} module differs from d2l 1.0.3:\n" + "\n".join(problems)


@pytest.mark.parametrize("notebook", NOTEBOOKS)
@pytest.mark.parametrize("framework", frameworks_checked())
def test_notebooks_use_d2l_names_that_we_define_alike(framework, notebook, tmp_path_factory):
    used = d2l_names_used(chapter.CHAPTER / notebook, framework)
    found = ours(framework, tmp_path_factory)
    api = d2l_api(framework)
    problems = []
    for name in sorted(used):
        if name not in api and name not in SHIM_ONLY_NAMES:
            problems.append(
                f"d2l.{name}: d2l 1.0.3 has no such name for {framework}; readers "
                f"with the real d2l package could not run the cell (avoid it, or "
                f"list it in SHIM_ONLY_NAMES with a reason)"
            )
        elif name not in api:
            problems += [] if found[name]["exists"] else [f"d2l.{name}: missing from d2l_shim"]
        else:
            problems += problems_with(framework, name, found[name])
    assert not problems, f"{notebook}, {framework} cells:\n" + "\n".join(problems)


if __name__ == "__main__":
    # python tests/test_api_parity.py FRAMEWORK REQUEST.json RESULT.json (see the docstring)
    framework_arg, request_path, result_path = sys.argv[1:4]
    result = describe(framework_arg, json.loads(Path(request_path).read_text()))
    Path(result_path).write_text(json.dumps(result))
