"""Tooling for the tabbed notebooks: split, execute + merge, check, nbval.

A tabbed notebook holds each framework-specific code cell once per framework, marked by a
first line ``%%tab pytorch`` (or a comma list, or ``%%tab all``), next to shared cells.

    python -m d2l_tools notebooks split   [--src chapter_mlp] [--out build/notebooks]
    python -m d2l_tools notebooks execute [--src chapter_mlp] [--frameworks pytorch,jax]
                                          [--jobs 2] [--timeout 1200] [NOTEBOOK ...]
    python -m d2l_tools notebooks check   [--src chapter_mlp] [NOTEBOOK ...]
    python -m d2l_tools notebooks nbval   [--frameworks ...]

split    one plain notebook per framework: the book's downloads and what nbval runs.
execute  runs every notebook under each framework's kernel and merges the outputs back into
         the tabbed notebook (``make notebooks``); shared cells must print the same text
         under every framework.
check    the structure rules: tab groups, fresh error-free stored outputs, tags, kernelspec.
nbval    splits, then runs nbval on each framework's notebooks (the nbval stages of make test).

nbval compares outputs through d2l_tools.nbval_plugin (numbers within tolerances, see
d2l_tools.compare).
"""

import argparse
import ast
import asyncio
import base64
import copy
import hashlib
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

from d2l_shim import FRAMEWORKS
from d2l_shim.tab import MARKER, TabMarkerError, is_tab_line, parse_tab_line
import d2l_tools
from d2l_tools import chapter
from d2l_tools.files import write_atomic
from d2l_tools.compare import Policy, PolicyError, compare_outputs
from d2l_tools.envs import environment_of
from d2l_tools.kernels import display_name, kernel_name, kernel_spec

REPO = Path(__file__).resolve().parents[2]
SANITIZE_CFG = Path(__file__).with_name("nbval_sanitize.cfg")
DEFAULT_SRC = "chapter_mlp"
DEFAULT_OUT = "build/notebooks"
CELL_TIMEOUT = 1200  # seconds; a full training run on 2 CPU cores takes minutes
HEARTBEAT = 60  # seconds between "still running" lines during a long cell
MIN_ACCURACY = 0.80
IGNORE_OUTPUT_TAG = "nbval-ignore-output"
REMOVE_CELL_TAG = "remove-cell"
# Kernel environment for stored and re-run outputs alike: matplotlib stamps SVG figures with
# the current date unless SOURCE_DATE_EPOCH is set; D2L_PROGRESS=static makes training boards
# emit one final figure instead of animating (nbval ignores clear_output and would see them all).
# Two kernels run side by side (--jobs 2) on a 2-core machine, so each gets one compute
# thread: oversubscribed, PyTorch was measured 12x slower per minibatch.
ONE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MXNET_CPU_WORKER_NTHREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
}
STATIC_OUTPUT_ENV = {"SOURCE_DATE_EPOCH": "0", "D2L_PROGRESS": "static"}
REPRODUCIBLE_ENV = {**STATIC_OUTPUT_ENV, **ONE_THREAD_ENV}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class NotebookError(Exception):
    """A problem the user has to fix; the message says where and how."""


# ---------------------------------------------------------------------------------------------
# Cells


@dataclass(frozen=True)
class Tab:
    """Which kernels run a code cell. ``shared``: no ``%%tab`` line, or ``%%tab all``."""

    frameworks: tuple
    shared: bool


SHARED = Tab(FRAMEWORKS, True)


def first_line(source):
    return source.split("\n", 1)[0]


def cell_tab(cell):
    """The cell's Tab; raises TabMarkerError for a bad ``%%tab`` line."""
    line = first_line(cell.source)
    if cell.cell_type != "code" or not is_tab_line(line):
        return SHARED
    named = parse_tab_line(line)
    if line[len(MARKER):].replace(",", " ").split() == ["all"]:
        return SHARED
    if len(set(named)) < len(named):
        raise TabMarkerError(f"'{line.strip()}' names a framework twice")
    return Tab(tuple(fw for fw in FRAMEWORKS if fw in named), False)


def cell_body(cell):
    """The source without its ``%%tab`` line."""
    if not is_tab_line(first_line(cell.source)):
        return cell.source
    return cell.source.split("\n", 1)[1] if "\n" in cell.source else ""


def source_sha256(source):
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def describe(index, cell):
    line = first_line(cell.source)
    return f"cell {index} ({line[:60] + '...' if len(line) > 60 else line!r})"


def kernelspec(framework):
    return {"name": kernel_name(framework), "display_name": display_name(framework), "language": "python"}


# ---------------------------------------------------------------------------------------------
# Reading and writing


def read_notebook(path):
    try:
        return nbformat.read(str(path), as_version=4)
    except (OSError, ValueError) as err:
        raise NotebookError(f"{path}: cannot read the notebook: {err}") from None


def notebook_text(nb):
    # nbformat's own layout (sorted keys, indent 1), as Jupyter saves it: no diff churn.
    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def write_notebook(nb, path):
    """Write atomically; returns False (file untouched, mtime kept) when the bytes are equal."""
    path = Path(path)
    text = notebook_text(nb)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    write_atomic(path, text, mode=path.stat().st_mode & 0o777 if path.exists() else 0o644)
    return True


def find_notebooks(src, names=()):
    """The notebooks named on the command line, or those of ``src``'s table of contents, in its order."""
    try:
        listed = chapter.notebooks(src)
    except chapter.ChapterError as err:
        if not names:
            raise NotebookError(str(err)) from None
        listed = []
    if not names:
        return listed
    # A path, or a name of the chapter's table of contents ("mlp-scratch", as NOTEBOOKS= gives it).
    by_name = {path.stem: path for path in listed}
    paths = [by_name.get(name.removesuffix(".ipynb"), Path(name)) for name in names]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise NotebookError(f"no such notebook: {', '.join(missing)} (the chapter's are: "
                            f"{', '.join(by_name) or 'none listed'})")
    return paths


# ---------------------------------------------------------------------------------------------
# Split


LOCAL_IMAGE = re.compile(r"!\[([^\]]*)\]\((?!attachment:|[a-z]+://|/)([^)\s]+)\)")
IMAGE_TYPES = {".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


def attach_images(cell, folder):
    """Embed the local images a markdown cell shows (``![alt](img/x.svg)``) as cell attachments.

    A split notebook travels alone (the book's downloads, a reader's copy); with its images
    attached it shows them wherever it is opened.
    """
    def attach(match):
        path = Path(folder) / match.group(2)
        mime = IMAGE_TYPES.get(path.suffix.lower())
        if mime is None or not path.is_file():
            return match.group(0)
        name = path.name
        cell.setdefault("attachments", {})[name] = {mime: base64.b64encode(path.read_bytes()).decode("ascii")}
        return f"![{match.group(1)}](attachment:{name})"

    cell.source = LOCAL_IMAGE.sub(attach, cell.source)


def split_notebook(nb, framework, folder=None):
    """The plain notebook for one framework: its cells and the shared ones, no ``%%tab`` lines.

    With ``folder`` (where the tabbed notebook lives), its local images are attached.
    """
    split = copy.deepcopy(nb)
    cells = []
    count = 0
    for index, cell in enumerate(split.cells):
        if cell.cell_type == "code":
            try:
                if framework not in cell_tab(cell).frameworks:
                    continue
            except TabMarkerError as err:
                raise NotebookError(f"{describe(index, cell)}: {err}") from None
            cell.source = cell_body(cell)
            # nbval compares outputs only of cells that carry an execution count.
            count += 1
            cell.execution_count = count
            for output in cell.outputs:
                if output.output_type == "execute_result":
                    output.execution_count = count
            d2l = cell.metadata.get("d2l", {})
            d2l.pop("source_sha256", None)  # it hashed the tabbed source, not this one
            if "d2l" in cell.metadata and not d2l:
                del cell.metadata["d2l"]
        elif cell.cell_type == "markdown" and folder is not None:
            attach_images(cell, folder)
        cells.append(cell)
    split.cells = cells
    split.metadata["kernelspec"] = kernelspec(framework)
    return split


def split_notebooks(paths, out, frameworks=FRAMEWORKS, prune=False):
    """Write ``out/<framework>/<folder>/<name>.ipynb`` for each notebook; returns the paths.

    ``prune`` removes split notebooks whose source is gone (when ``paths`` is a whole folder).
    """
    written = []
    for path in paths:
        try:
            nb = read_notebook(path)
            splits = {fw: split_notebook(nb, fw, folder=path.parent) for fw in frameworks}
        except NotebookError as err:
            raise NotebookError(f"{path}: {err}") from None
        for fw, split in splits.items():
            target = Path(out) / fw / path.parent.name / path.name
            write_notebook(split, target)
            written.append(target)
    if prune:
        for folder in {target.parent for target in written}:
            for stale in set(folder.glob("*.ipynb")) - set(written):
                stale.unlink()
    return written


# ---------------------------------------------------------------------------------------------
# Execute and merge


def _require_kernels(frameworks):
    from jupyter_client.kernelspec import KernelSpecManager

    installed = KernelSpecManager().find_kernel_specs()
    missing = [kernel_name(fw) for fw in frameworks if kernel_name(fw) not in installed]
    if missing:
        raise NotebookError(
            f"Jupyter kernel(s) {', '.join(missing)} not installed: run "
            "`python -m d2l_tools.kernels install` (part of `make setup`)"
        )


async def _run_under(path, nb, framework, timeout, slots):
    """Execute a copy of ``nb`` under ``framework``'s kernel; returns the executed copy."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = copy.deepcopy(nb)
    label = f"[{path.name} · {framework}]"
    own = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code" and framework in cell_tab(cell).frameworks]
    clock = {}

    def on_execute(cell, cell_index, **_):
        clock["cell"], clock["index"] = time.monotonic(), cell_index
        if cell_index in own:
            done = own.index(cell_index) + 1
            elapsed = time.monotonic() - clock["start"]
            print(f"{label} {elapsed:6.1f} s  cell {cell_index} ({done}/{len(own)}): "
                  f"{first_line(cell_body(cell))[:60]}", flush=True)

    def on_executed(cell, cell_index, **_):
        took = time.monotonic() - clock.pop("cell")
        if took >= 5:
            print(f"{label} cell {cell_index} took {took:.1f} s", flush=True)

    async def heartbeat():  # a training cell runs for minutes: show that it is still going
        while True:
            await asyncio.sleep(HEARTBEAT)
            if "cell" in clock:
                print(f"{label} cell {clock['index']} running for {time.monotonic() - clock['cell']:.0f} s",
                      flush=True)

    client = NotebookClient(
        nb,
        kernel_name=kernel_name(framework),
        timeout=timeout,
        record_timing=False,  # timestamps in cell metadata would change on every run
        coalesce_streams=True,  # stream chunking varies between runs; the joined text does not
        resources={"metadata": {"path": str(path.parent.resolve())}},
        on_cell_execute=on_execute,
        on_cell_executed=on_executed,
    )
    async with slots:
        clock["start"] = time.monotonic()
        print(f"{label} starting kernel {kernel_name(framework)}", flush=True)
        beat = asyncio.ensure_future(heartbeat())
        try:
            await client.async_execute(env={**os.environ, **REPRODUCIBLE_ENV})
        except (CellExecutionError, CellTimeoutError, DeadKernelError) as err:
            index = clock.get("index")
            where = describe(index, nb.cells[index]) if index is not None else "kernel start"
            detail = _ANSI.sub("", str(err)).strip()
            raise NotebookError(f"{path}: {framework}: {where} failed: {type(err).__name__}\n{detail}") from None
        except Exception as err:  # kernel did not start, lost connection, ...
            raise NotebookError(f"{path}: {framework}: kernel {kernel_name(framework)}: "
                                f"{type(err).__name__}: {err}") from None
        finally:
            beat.cancel()
        print(f"{label} done in {time.monotonic() - clock['start']:.1f} s", flush=True)
    return nb


def _load_sanitizer():
    """nbval's own sanitizing, so 'same text' means the same as it does under nbval."""
    from nbval.plugin import get_sanitize_patterns

    patterns = get_sanitize_patterns(SANITIZE_CFG.read_text(encoding="utf-8"))

    def sanitize(text):
        for regex, replacement in patterns:
            text = re.sub(regex, replacement, text)
        return text

    return sanitize


def merge_runs(nb, runs, name="notebook"):
    """Merge per-framework executed copies of ``nb`` (``{framework: nb}``) into ``nb``.

    A cell gets the outputs of the first framework that ran it; cells that no framework in
    ``runs`` runs keep what they had. Raises NotebookError naming every cell whose text
    output differs between the frameworks that ran it.
    """
    sanitize = _load_sanitizer()
    problems = []
    order = [fw for fw in FRAMEWORKS if fw in runs]
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for fw in order:
            if runs[fw].cells[index].source != cell.source:
                raise NotebookError(f"{name}: {describe(index, cell)}: the {fw} run saw another source")
        tab = cell_tab(cell)
        ran = [fw for fw in order if fw in tab.frameworks]
        stray = [fw for fw in order if fw not in tab.frameworks and runs[fw].cells[index].outputs]
        if stray:
            problems.append(
                f"{describe(index, cell)}: printed output under {', '.join(stray)} although it is not "
                "for that framework: is `%load_ext d2l_shim.tab` in the first code cell?"
            )
        if not ran:
            continue
        if len(ran) > 1 and IGNORE_OUTPUT_TAG not in cell.metadata.get("tags", []):
            # A shared cell must print the same text under every framework, up to the
            # tolerances nbval will allow (images may differ: each framework draws its own).
            first = runs[ran[0]].cells[index].outputs
            policy = Policy.from_metadata(cell.metadata)
            differing = {fw: compare_outputs(first, runs[fw].cells[index].outputs, policy, sanitize, images=False)
                         for fw in ran[1:]}
            differing = {fw: found for fw, found in differing.items() if found}
            if differing:
                lines = [f"  {fw} against {ran[0]}: {found[0]}" for fw, found in differing.items()]
                problems.append(
                    f"{describe(index, cell)}: its text output differs between frameworks:\n" + "\n".join(lines)
                    + "\n  Make it a tab group (one `%%tab <framework>` cell each) or make its output"
                    " framework-neutral."
                )
                continue
        cell.outputs = copy.deepcopy(runs[ran[0]].cells[index].outputs)
        for output in cell.outputs:
            if output.output_type == "execute_result":
                output.execution_count = None
        cell.execution_count = None
        cell.metadata.pop("execution", None)
        cell.metadata.setdefault("d2l", {})["source_sha256"] = source_sha256(cell.source)
    if problems:
        raise NotebookError(f"{name}:\n" + "\n".join(problems))
    return nb


# What can change the outputs of a (notebook, framework) pair. Each part is hashed on its own,
# so that a skipped or re-run pair can say which part changed.
KEY_PARTS = ("cells", "d2l_shim", "environment", "data", "kernel")
KEY_LABELS = {"cells": "its cells changed", "d2l_shim": "d2l_shim changed",
              "environment": "the environment's lock file changed", "data": "the data cache changed",
              "kernel": "the kernel's settings changed"}
SHIM_DIR = Path(__file__).resolve().parents[2] / "d2l_shim"


def _digest(*chunks):
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk if isinstance(chunk, bytes) else str(chunk).encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:16]


def _shim_digest():
    files = sorted(SHIM_DIR.rglob("*.py"))
    return _digest(*(part for f in files for part in (f.relative_to(SHIM_DIR).as_posix(), f.read_bytes())))


def _data_digest():
    from d2l_shim.data import PROVENANCE, cache_dir

    provenance = cache_dir() / PROVENANCE
    return _digest(provenance.read_bytes()) if provenance.is_file() else "no data cache"


def execution_key(nb, framework):
    """``{part: hash}`` of everything that can change ``nb``'s outputs under ``framework``."""
    cells = [cell.source for cell in nb.cells if cell.cell_type == "code" and framework in cell_tab(cell).frameworks]
    env = environment_of(framework)
    return {
        "cells": _digest(*cells),
        "d2l_shim": _shim_digest(),
        "environment": _digest(*(path.read_bytes() if path.exists() else b"missing" for path in env.lock_files)),
        "data": _data_digest(),
        "kernel": _digest(sorted(kernel_spec(framework, "python")["env"].items()), sorted(REPRODUCIBLE_ENV.items())),
    }


def stale_parts(nb, framework, current):
    """Why ``nb``'s stored outputs under ``framework`` may be out of date, given its ``current``
    execution key: labels, empty when current."""
    stored = ((nb.metadata.get("d2l") or {}).get("execution_keys") or {}).get(framework)
    if not stored:
        return ["never executed with an execution key"]
    return [KEY_LABELS[part] for part in KEY_PARTS if stored.get(part) != current[part]]


async def _execute_notebook(path, frameworks, timeout, slots, force=False):
    before = path.read_bytes()
    nb = read_notebook(path)
    try:
        for index, cell in enumerate(nb.cells):
            cell_tab(cell)
    except TabMarkerError as err:
        raise NotebookError(f"{path}: {describe(index, cell)}: {err}") from None
    # Keyed before the run: what the kernels start with is what their outputs come from.
    current = {fw: execution_key(nb, fw) for fw in frameworks}
    to_run = []
    for fw in frameworks:
        reasons = ["--force"] if force else stale_parts(nb, fw, current[fw])
        if reasons:
            to_run.append(fw)
            print(f"[{path.name} · {fw}] executing: {'; '.join(reasons)}", flush=True)
        else:
            print(f"[{path.name} · {fw}] skipped: nothing that can change its outputs changed", flush=True)
    if not to_run:
        return []
    results = await asyncio.gather(
        *(_run_under(path, nb, fw, timeout, slots) for fw in to_run), return_exceptions=True
    )
    errors = [str(r) for r in results if isinstance(r, BaseException)]
    if errors:
        raise NotebookError("\n\n".join(errors))
    merged = merge_runs(nb, dict(zip(to_run, results)), name=str(path))
    keys = merged.metadata.setdefault("d2l", {}).setdefault("execution_keys", {})
    for fw in to_run:
        keys[fw] = current[fw]
    if path.read_bytes() != before:
        raise NotebookError(f"{path} changed on disk while it ran; nothing written: run again")
    changed = write_notebook(merged, path)
    print(f"{path}: {'updated' if changed else 'unchanged'}", flush=True)
    return to_run


def execute_notebooks(paths, frameworks=FRAMEWORKS, jobs=2, timeout=CELL_TIMEOUT, force=False):
    """Run and merge the (notebook, framework) pairs whose outputs may be out of date.

    A pair runs when something that can change its outputs changed since its stored outputs
    were made (see ``execution_key``), or always with ``force``. ``jobs`` kernels run at a
    time. A notebook whose run fails under any framework is left untouched. Returns
    ``{path: [frameworks executed]}``; raises NotebookError listing all failed notebooks.
    """
    _require_kernels(frameworks)

    async def run_all():
        slots = asyncio.Semaphore(jobs)
        return await asyncio.gather(
            *(_execute_notebook(Path(p), frameworks, timeout, slots, force) for p in paths), return_exceptions=True
        )

    results = asyncio.run(run_all())
    errors = [r for r in results if isinstance(r, BaseException)]
    for err in errors:
        if not isinstance(err, NotebookError):
            raise err
    if errors:
        raise NotebookError("\n\n".join(str(err) for err in errors))
    executed = dict(zip(map(Path, paths), results))
    ran = sum(len(fws) for fws in executed.values())
    print(f"executed {ran} of {len(paths) * len(frameworks)} (notebook, framework) pair(s); "
          f"{len(paths) * len(frameworks) - ran} skipped as current")
    return executed


# ---------------------------------------------------------------------------------------------
# Structure check


def _check_group(group):
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


def _check_kernelspec(nb):
    spec = nb.metadata.get("kernelspec") or {}
    names = {kernel_name(fw): fw for fw in FRAMEWORKS}
    if spec.get("name") not in names:
        return [f"notebook metadata: kernelspec name is {spec.get('name')!r}, not one of {', '.join(names)}: "
                "choose a d2l kernel in Jupyter (Kernel > Change Kernel) and save"]
    problems = []
    expected = display_name(names[spec["name"]])
    if spec.get("display_name") != expected:
        problems.append(f"notebook metadata: kernelspec display_name is {spec.get('display_name')!r}, "
                        f"expected {expected!r}")
    if spec.get("language") != "python":
        problems.append(f"notebook metadata: kernelspec language is {spec.get('language')!r}, expected 'python'")
    return problems


def _check_cell(index, cell, tab):
    where = describe(index, cell)
    problems = []
    if any(is_tab_line(line) for line in cell.source.split("\n")[1:]):
        problems.append(f"{where}: a %%tab line must be the cell's first line")
    tags = cell.metadata.get("tags", [])
    d2l = cell.metadata.get("d2l", {})
    if IGNORE_OUTPUT_TAG in tags and not str(d2l.get("nbval_ignore_reason", "")).strip():
        problems.append(f"{where}: tagged {IGNORE_OUTPUT_TAG} without metadata.d2l.nbval_ignore_reason "
                        "(say in a few words what varies between runs)")
    try:
        policy = Policy.from_metadata(cell.metadata)
        if policy.loosened and not policy.reason:
            problems.append(f"{where}: metadata.d2l.compare loosens the comparison without a reason "
                            "(say in a few words what varies between machines and why the tolerance holds it)")
    except PolicyError as err:
        problems.append(f"{where}: {err}")
    if cell.cell_type != "code":
        return problems
    for out in cell.outputs:
        if out.output_type == "error":
            problems.append(f"{where}: stored error output ({out.ename}: {_ANSI.sub('', out.evalue)[:200]})")
    if cell.execution_count is not None or any(o.get("execution_count") is not None for o in cell.outputs):
        problems.append(f"{where}: execution counts must be null (run `make notebooks`, which strips them)")
    stored = d2l.get("source_sha256")
    if stored is None:
        problems.append(f"{where}: never run by `make notebooks` (no metadata.d2l.source_sha256): run it")
        return problems
    if stored != source_sha256(cell.source):
        problems.append(f"{where}: stale outputs, the source changed after they were made: run `make notebooks`")
    if not tab.shared:
        if not cell.outputs and not d2l.get("no_output"):
            problems.append(f"{where}: framework cell without stored output; if it rightly prints nothing, "
                            "set metadata.d2l.no_output: true")
        if cell.outputs and d2l.get("no_output"):
            problems.append(f"{where}: has outputs but is marked metadata.d2l.no_output: true; drop the flag")
    return problems


def _check_accuracy_cells(nb):
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
    return [f"training notebook: no {REMOVE_CELL_TAG}-tagged cell asserting accuracy >= {MIN_ACCURACY:.2f} "
            f"for {', '.join(missing)}"]


def check_notebook(nb, training=False):
    """Structure problems of a tabbed notebook, as messages naming the cell."""
    problems = []
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as err:
        problems.append(f"notebook does not follow the nbformat schema: {err.message}")
    problems += _check_kernelspec(nb)
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    if not code:
        problems.append("notebook has no code cells")
    else:
        index, cell = code[0]
        lines = {line.strip() for line in cell.source.splitlines()}
        for needed in ("%load_ext d2l_shim.tab", "%matplotlib inline"):
            if needed not in lines:
                problems.append(f"first code cell, {describe(index, cell)}: add the line `{needed}`")
    group, group_ok = [], True

    def close_group():
        nonlocal group, group_ok
        if group and group_ok:
            problems.extend(_check_group(group))
        group, group_ok = [], True

    for index, cell in enumerate(nb.cells):
        try:
            tab = cell_tab(cell)
        except TabMarkerError as err:
            problems.append(f"{describe(index, cell)}: {err}")
            tab, group_ok = Tab((), False), False  # reported already; skip its group's checks
        if cell.cell_type != "code" or tab.shared:
            close_group()
        elif tab.frameworks:
            group.append((index, cell, tab))
        problems += _check_cell(index, cell, tab)
    close_group()
    if training:
        problems += _check_accuracy_cells(nb)
    return problems


def check(path):
    """Problems of the tabbed notebook at ``path`` (empty list: fine)."""
    path = Path(path)
    try:
        nb = read_notebook(path)
    except NotebookError as err:
        return [str(err)]
    return check_notebook(nb, training=chapter.is_training_notebook(nb))


# ---------------------------------------------------------------------------------------------
# nbval


def nbval_command(framework, folder, junit_xml=None, timeout=CELL_TIMEOUT, python=sys.executable):
    """The pytest command line for nbval on one framework's split notebooks in ``folder``.

    Works from any directory; test ids are relative to the split root, so they start with the
    framework: ``pytorch/chapter_mlp/mlp.ipynb::Cell 3``.
    """
    folder = Path(folder).resolve()
    command = [
        str(python), "-m", "pytest", str(folder),
        f"--rootdir={folder.parent}",
        "-p", "d2l_tools.nbval_plugin",  # tolerant comparison (also loaded by its entry point)
        "--nbval",  # every cell's output is compared unless tagged nbval-ignore-output
        f"--nbval-kernel-name={kernel_name(framework)}",
        f"--nbval-sanitize-with={SANITIZE_CFG}",
        f"--nbval-cell-timeout={timeout}",
        "-p", "no:cacheprovider",  # nothing written but the results
        "-v", "--color=no",
    ]
    if junit_xml:
        command.append(f"--junitxml={junit_xml}")
    return command


# ---------------------------------------------------------------------------------------------
# Command line


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m d2l_tools notebooks", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name, help, frameworks=False, out=False, jobs=None, names=False):
        p = sub.add_parser(name, help=help)
        p.add_argument("--src", default=DEFAULT_SRC, help=f"folder of tabbed notebooks (default {DEFAULT_SRC})")
        if out:
            p.add_argument("--out", default=DEFAULT_OUT, help=f"folder for split notebooks (default {DEFAULT_OUT})")
        if frameworks:
            d2l_tools.add_frameworks_option(p)
        if jobs is not None:
            p.add_argument("--jobs", type=int, default=jobs, help=f"kernels at a time (default {jobs})")
            p.add_argument("--timeout", type=int, default=CELL_TIMEOUT, help="seconds per cell")
        if names:
            p.add_argument("notebooks", nargs="*", metavar="NOTEBOOK", help="default: all in --src")
        return p

    add("split", "write one notebook per framework", out=True)
    execute = add("execute", "run under every kernel what may be out of date, merge the outputs back (make notebooks)",
                  frameworks=True, jobs=2, names=True)
    execute.add_argument("--force", action="store_true", help="re-execute even the pairs that are current")
    add("check", "check the structure of the tabbed notebooks", names=True)
    add("nbval", "split, then run nbval per framework (the nbval stages of make test)", frameworks=True)
    args = parser.parse_args(argv)

    try:
        if args.command == "split":
            paths = split_notebooks(find_notebooks(args.src), args.out, prune=True)
            print(f"split {len(paths) // len(FRAMEWORKS)} notebook(s) into {args.out}/<framework>/")
        elif args.command == "execute":
            if args.jobs < 1:
                raise NotebookError("--jobs must be at least 1")
            execute_notebooks(find_notebooks(args.src, args.notebooks), args.frameworks,
                              args.jobs, args.timeout, args.force)
        elif args.command == "check":
            failed = False
            for path in find_notebooks(args.src, args.notebooks):
                problems = check(path)
                failed = failed or bool(problems)
                print(f"{path}: " + ("ok" if not problems else f"{len(problems)} problem(s)"))
                for problem in problems:
                    print("  " + problem.replace("\n", "\n    "))
            return 1 if failed else 0
        elif args.command == "nbval":
            from d2l_tools import testrun  # it imports this module

            return testrun.main(["--frameworks", ",".join(args.frameworks),
                                 "--only", "split", *(f"nbval-{fw}" for fw in args.frameworks)])
    except NotebookError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
