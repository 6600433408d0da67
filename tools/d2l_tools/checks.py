"""The rules a tabbed notebook follows (``python -m d2l_tools notebooks check``).

Two of them are also enforced where a notebook is executed or published, with the same
messages: ``tab_group_problems`` (every tab group has one cell per framework, in order; by
``notebooks execute`` and the book) and ``publishing_problems`` (a code cell's stored outputs
are error-free and belong to its current source; by the book).
"""

import ast
from pathlib import Path

import nbformat

from d2l_shim import FRAMEWORKS
from d2l_shim.tab import Tab, TabMarkerError, is_tab_line
from d2l_tools import chapter
from d2l_tools.cells import (
    IGNORE_OUTPUT_TAG,
    REMOVE_CELL_TAG,
    NotebookError,
    cell_body,
    cell_tab,
    describe,
    read_notebook,
    source_sha256,
)
from d2l_tools.compare import Policy, PolicyError
from d2l_tools.kernels import display_name, kernel_name
from d2l_tools.text import strip_ansi

MIN_ACCURACY = 0.80


def publishing_problems(cell):
    """What keeps a code cell's stored outputs from being published: error outputs, no record
    that `make notebooks` made them (metadata.d2l.source_sha256), or outputs of an older source.

    Messages without the cell's place, which the caller adds; empty when publishable.
    """
    problems = [
        f"stored error output ({out.get('ename', '?')}: {strip_ansi(out.get('evalue', ''))[:200]})"
        for out in cell.get("outputs", [])
        if out.output_type == "error"
    ]
    stored = cell.metadata.get("d2l", {}).get("source_sha256")
    if stored is None:
        problems.append("never run by `make notebooks` (no metadata.d2l.source_sha256): run it")
    elif stored != source_sha256(cell.source):
        problems.append("stale outputs, the source changed after they were made: run `make notebooks`")
    return problems


def _group_problems(group):
    """Problems of one run of consecutive framework cells: ``[(index, cell, tab), ...]``."""
    index, cell, _ = group[0]
    where = f"tab group starting at {describe(index, cell)}"
    named = [fw for _, _, tab in group for fw in tab.frameworks]
    problems = []
    missing = [fw for fw in FRAMEWORKS if fw not in named]
    twice = [fw for fw in FRAMEWORKS if named.count(fw) > 1]
    if missing:
        problems.append(f"{where}: no cell for {', '.join(missing)} (each framework needs exactly one)")
    if twice:
        problems.append(f"{where}: more than one cell for {', '.join(twice)} (each framework needs exactly one)")
    firsts = [FRAMEWORKS.index(tab.frameworks[0]) for _, _, tab in group]
    if firsts != sorted(set(firsts)):
        got = ", ".join("/".join(tab.frameworks) for _, _, tab in group)
        problems.append(f"{where}: cells in the order {got}; write them in the order {', '.join(FRAMEWORKS)}")
    return problems


def tab_group_problems(nb):
    """Bad ``%%tab`` lines, and tab groups (runs of framework cells) that lack a framework,
    name one twice or are out of order: messages naming the cell."""
    problems, group, group_ok = [], [], True
    for index, cell in enumerate([*nb.cells, None]):
        try:
            tab = cell_tab(cell) if cell is not None else None
        except TabMarkerError as err:
            problems.append(f"{describe(index, cell)}: {err}")
            group_ok = False  # reported already; its group's other checks would only add noise
            continue
        if tab is not None and cell.cell_type == "code" and not tab.shared:
            group.append((index, cell, tab))
        else:  # a shared code cell, prose, or the notebook's end closes the group
            if group and group_ok:
                problems += _group_problems(group)
            group, group_ok = [], True
    return problems


def require_whole_tab_groups(path, nb):
    """Raise NotebookError with `notebooks check`'s own messages when a ``%%tab`` line is bad or
    a tab group lacks a framework: such a notebook is neither executed nor published."""
    problems = tab_group_problems(nb)
    if problems:
        raise NotebookError(
            f"{path}:\n"
            + "\n".join(f"  {problem}" for problem in problems)
            + "\n  fix the tab groups (`python -m d2l_tools notebooks check` lists every problem)"
        )


def asserts_accuracy(source, minimum=MIN_ACCURACY):
    """True when the code asserts that something named like 'acc...' is >= ``minimum``."""
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return False

    def bound(node):
        return isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and node.value >= minimum

    def about_accuracy(node):
        return "acc" in ast.unparse(node).lower()

    for node in ast.walk(tree):
        if not isinstance(node, ast.Assert):
            continue
        for compare in (n for n in ast.walk(node.test) if isinstance(n, ast.Compare)):
            operands = [compare.left, *compare.comparators]
            for left, op, right in zip(operands, compare.ops, operands[1:]):
                if isinstance(op, (ast.GtE, ast.Gt)) and bound(right) and about_accuracy(left):
                    return True
                if isinstance(op, (ast.LtE, ast.Lt)) and bound(left) and about_accuracy(right):
                    return True
    return False


def _kernelspec_problems(nb):
    spec = nb.metadata.get("kernelspec") or {}
    names = {kernel_name(fw): fw for fw in FRAMEWORKS}
    if spec.get("name") not in names:
        return [
            f"notebook metadata: kernelspec name is {spec.get('name')!r}, not one of {', '.join(names)}: "
            "choose a d2l kernel in Jupyter (Kernel > Change Kernel) and save"
        ]
    problems = []
    expected = display_name(names[spec["name"]])
    if spec.get("display_name") != expected:
        problems.append(
            f"notebook metadata: kernelspec display_name is {spec.get('display_name')!r}, expected {expected!r}"
        )
    if spec.get("language") != "python":
        problems.append(f"notebook metadata: kernelspec language is {spec.get('language')!r}, expected 'python'")
    return problems


def _cell_problems(index, cell, tab):
    where = describe(index, cell)
    problems = []
    if any(is_tab_line(line) for line in cell.source.split("\n")[1:]):
        problems.append(f"{where}: a %%tab line must be the cell's first line")
    tags = cell.metadata.get("tags", [])
    d2l = cell.metadata.get("d2l", {})
    if IGNORE_OUTPUT_TAG in tags and not str(d2l.get("nbval_ignore_reason", "")).strip():
        problems.append(
            f"{where}: tagged {IGNORE_OUTPUT_TAG} without metadata.d2l.nbval_ignore_reason "
            "(say in a few words what varies between runs)"
        )
    try:
        policy = Policy.from_metadata(cell.metadata)
        if policy.loosened and not policy.reason:
            problems.append(
                f"{where}: metadata.d2l.compare loosens the comparison without a reason "
                "(say in a few words what varies between machines and why the tolerance holds it)"
            )
    except PolicyError as err:
        problems.append(f"{where}: {err}")
    if cell.cell_type != "code":
        return problems
    if cell.execution_count is not None or any(o.get("execution_count") is not None for o in cell.outputs):
        problems.append(f"{where}: execution counts must be null (run `make notebooks`, which strips them)")
    publishing = publishing_problems(cell)
    problems += [f"{where}: {problem}" for problem in publishing]
    if "source_sha256" not in d2l:
        return problems
    if not tab.shared:
        if not cell.outputs and not d2l.get("no_output"):
            problems.append(
                f"{where}: framework cell without stored output; if it rightly prints nothing, "
                "set metadata.d2l.no_output: true"
            )
        if cell.outputs and d2l.get("no_output"):
            problems.append(f"{where}: has outputs but is marked metadata.d2l.no_output: true; drop the flag")
    return problems


def _accuracy_problems(nb):
    covered = set()
    for cell in nb.cells:
        if cell.cell_type == "code" and REMOVE_CELL_TAG in cell.metadata.get("tags", []):
            try:
                tab = cell_tab(cell)
            except TabMarkerError:
                continue
            if asserts_accuracy(cell_body(cell)):
                covered.update(tab.frameworks)
    missing = [fw for fw in FRAMEWORKS if fw not in covered]
    if not missing:
        return []
    return [
        f"training notebook: no {REMOVE_CELL_TAG}-tagged cell asserting accuracy >= {MIN_ACCURACY:.2f} "
        f"for {', '.join(missing)}"
    ]


def check_notebook(nb, training=False):
    """Structure problems of a tabbed notebook, as messages naming the cell."""
    problems = []
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as err:
        problems.append(f"notebook does not follow the nbformat schema: {err.message}")
    problems += _kernelspec_problems(nb)
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    if not code:
        problems.append("notebook has no code cells")
    else:
        index, cell = code[0]
        lines = {line.strip() for line in cell.source.splitlines()}
        for needed in ("%load_ext d2l_shim.tab", "%matplotlib inline"):
            if needed not in lines:
                problems.append(f"first code cell, {describe(index, cell)}: add the line `{needed}`")
    problems += tab_group_problems(nb)
    for index, cell in enumerate(nb.cells):
        try:
            tab = cell_tab(cell)
        except TabMarkerError:
            tab = Tab((), False)  # reported by tab_group_problems
        problems += _cell_problems(index, cell, tab)
    if training:
        problems += _accuracy_problems(nb)
    return problems


def check(path):
    """Problems of the tabbed notebook at ``path`` (empty list: fine)."""
    path = Path(path)
    try:
        nb = read_notebook(path)
    except NotebookError as err:
        return [str(err)]
    return check_notebook(nb, training=chapter.is_training_notebook(nb))
