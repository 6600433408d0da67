"""Execute the tabbed notebooks under every framework's kernel and merge the outputs back.

What ``python -m d2l_tools notebooks execute`` (``make notebooks``) does. A (notebook,
framework) pair runs only when something that can change its outputs changed since they were
stored (its execution key); shared cells must print the same text under every framework.
"""

import asyncio
import copy
import hashlib
import inspect
import os
import sys
import threading
import time
from pathlib import Path

from d2l_shim import FRAMEWORKS
from d2l_tools.cells import (
    IGNORE_OUTPUT_TAG,
    NotebookError,
    cell_body,
    cell_tab,
    describe,
    first_line,
    read_notebook,
    source_sha256,
    write_notebook,
)
from d2l_tools.checks import require_whole_tab_groups
from d2l_tools.compare import Policy, compare_outputs
from d2l_tools.envs import REPO, environment_of
from d2l_tools.kernels import (
    CELL_TIMEOUT,
    REPRODUCIBLE_ENV,
    KernelError,
    kernel_name,
    kernel_spec,
    require_kernels,
)
from d2l_tools.nbval_plugin import sanitizer
from d2l_tools.text import strip_ansi

HEARTBEAT = 60  # seconds between "still running" lines during a long cell
# The clients whose kernels are running a cell (added and removed on the event loop's thread):
# on Ctrl-C those cells are interrupted before the kernels are shut down. A kernel still
# starting is not signalled (it would die mid-import); it stops before its first cell.
_RUNNING = set()
_STOPPING = threading.Event()  # set on Ctrl-C: no further cell starts
SHIM_DIR = REPO / "d2l_shim"


class Interrupted(Exception):
    """Ctrl-C stopped the runs; ``untouched`` are the notebooks left as they were."""

    def __init__(self, untouched):
        super().__init__(
            f"interrupted; {', '.join(map(str, untouched)) or 'no notebook'} "
            f"{'is' if len(untouched) == 1 else 'are'} unchanged"
        )
        self.untouched = untouched


# ---------------------------------------------------------------------------------------------
# The execution key: what can change the outputs of a (notebook, framework) pair. Each part is
# hashed on its own, so that a skipped or re-run pair can say which part changed.

KEY_PARTS = ("cells", "d2l_shim", "environment", "data", "kernel")
KEY_LABELS = {
    "cells": "its cells changed",
    "d2l_shim": "d2l_shim changed",
    "environment": "the environment's lock file changed",
    "data": "the data cache changed",
    "kernel": "the kernel's settings changed",
}


def _digest(*chunks):
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk if isinstance(chunk, bytes) else str(chunk).encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:16]


def _shim_digest():
    files = sorted(SHIM_DIR.rglob("*.py"))
    return _digest(*(part for f in files for part in (f.relative_to(SHIM_DIR).as_posix(), f.read_bytes())))


def data_digest(data_dir=None):
    """The data the notebooks read, by the files' content (not when or how they were fetched)."""
    from d2l_shim.data import DataError, cache_fingerprint

    try:
        return cache_fingerprint(data_dir)
    except DataError:  # e.g. D2L_DATA_DIR names a file: the notebooks' own runs say so
        return "no data cache"


def execution_key(nb, framework):
    """``{part: hash}`` of everything that can change ``nb``'s outputs under ``framework``."""
    cells = [cell.source for cell in nb.cells if cell.cell_type == "code" and framework in cell_tab(cell).frameworks]
    env = environment_of(framework)
    return {
        "cells": _digest(*cells),
        "d2l_shim": _shim_digest(),
        "environment": _digest(*(path.read_bytes() if path.exists() else b"missing" for path in env.lock_files)),
        "data": data_digest(),
        "kernel": _digest(sorted(kernel_spec(framework, "python")["env"].items()), sorted(REPRODUCIBLE_ENV.items())),
    }


def stale_parts(nb, framework, current):
    """Why ``nb``'s stored outputs under ``framework`` may be out of date, given its ``current``
    execution key: labels, empty when current."""
    stored = ((nb.metadata.get("d2l") or {}).get("execution_keys") or {}).get(framework)
    if not stored:
        return ["never executed with an execution key"]
    return [KEY_LABELS[part] for part in KEY_PARTS if stored.get(part) != current[part]]


# ---------------------------------------------------------------------------------------------
# Running


async def _run_under(path, nb, framework, timeout, slots):
    """Execute a copy of ``nb`` under ``framework``'s kernel; returns the executed copy."""
    from nbclient import NotebookClient
    from nbclient.exceptions import (
        CellExecutionError,
        CellTimeoutError,
        DeadKernelError,
    )

    nb = copy.deepcopy(nb)
    label = f"[{path.name} · {framework}]"
    own = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code" and framework in cell_tab(cell).frameworks]
    clock = {}

    def on_execute(cell, cell_index, **_):
        if _STOPPING.is_set():
            raise NotebookError(f"{path}: {framework}: interrupted before cell {cell_index}")
        clock["cell"], clock["index"] = time.monotonic(), cell_index
        _RUNNING.add(client)
        if cell_index in own:
            done = own.index(cell_index) + 1
            elapsed = time.monotonic() - clock["start"]
            print(
                f"{label} {elapsed:6.1f} s  cell {cell_index} ({done}/{len(own)}): {first_line(cell_body(cell))[:60]}",
                flush=True,
            )

    def on_executed(cell, cell_index, **_):
        _RUNNING.discard(client)
        took = time.monotonic() - clock.pop("cell")
        if took >= 5:
            print(f"{label} cell {cell_index} took {took:.1f} s", flush=True)

    async def heartbeat():  # a training cell runs for minutes: show that it is still going
        while True:
            await asyncio.sleep(HEARTBEAT)
            if "cell" in clock:
                print(f"{label} cell {clock['index']} running for {time.monotonic() - clock['cell']:.0f} s", flush=True)

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
            # async_execute shuts its kernel down on the way out, cancellation (Ctrl-C) included.
            await client.async_execute(env={**os.environ, **REPRODUCIBLE_ENV})
        except (CellExecutionError, CellTimeoutError, DeadKernelError) as err:
            index = clock.get("index")
            where = describe(index, nb.cells[index]) if index is not None else "kernel start"
            detail = strip_ansi(str(err)).strip()
            raise NotebookError(f"{path}: {framework}: {where} failed: {type(err).__name__}\n{detail}") from None
        except Exception as err:  # kernel did not start, lost connection, ...
            raise NotebookError(
                f"{path}: {framework}: kernel {kernel_name(framework)}: {type(err).__name__}: {err}"
            ) from None
        finally:
            _RUNNING.discard(client)
            beat.cancel()
        print(f"{label} done in {time.monotonic() - clock['start']:.1f} s", flush=True)
    return nb


def merge_runs(nb, runs, name="notebook"):
    """Merge per-framework executed copies of ``nb`` (``{framework: nb}``) into ``nb``.

    A cell gets the outputs of the first framework that ran it; cells that no framework in
    ``runs`` runs keep what they had. Raises NotebookError naming every cell whose text
    output differs between the frameworks that ran it.
    """
    sanitize = sanitizer()
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
            differing = {
                fw: compare_outputs(first, runs[fw].cells[index].outputs, policy, sanitize, images=False)
                for fw in ran[1:]
            }
            differing = {fw: found for fw, found in differing.items() if found}
            if differing:
                lines = [f"  {fw} against {ran[0]}: {found[0]}" for fw, found in differing.items()]
                problems.append(
                    f"{describe(index, cell)}: its text output differs between frameworks:\n"
                    + "\n".join(lines)
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


def _readable(path):
    """``path`` as the maintainer typed it: relative to the working directory when under it."""
    relative = os.path.relpath(path)
    return Path(relative) if not relative.startswith("..") else Path(path)


async def _execute_notebook(path, frameworks, timeout, slots, force=False):
    before = path.read_bytes()
    nb = read_notebook(path)
    require_whole_tab_groups(path, nb)
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
    results = await asyncio.gather(*(_run_under(path, nb, fw, timeout, slots) for fw in to_run), return_exceptions=True)
    cancelled = [r for r in results if isinstance(r, (asyncio.CancelledError, KeyboardInterrupt))]
    if cancelled:
        raise cancelled[0]
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


async def _interrupt_cells():
    """Interrupt the running kernels' cells, as Jupyter's stop button does, and let them answer:
    a kernel shut down in the middle of a cell prints ZMQ tracebacks."""
    _STOPPING.set()
    for client in list(_RUNNING):
        if client.km is not None and client.km.has_kernel:
            interrupted = client.km.interrupt_kernel()
            if inspect.isawaitable(interrupted):
                await interrupted


def _run_interruptibly(make_coroutine, on_interrupt, grace=5):
    """Run ``make_coroutine()`` to its end; on Ctrl-C, run ``on_interrupt()``, give the run
    ``grace`` seconds to end, else cancel it; let it unwind and raise KeyboardInterrupt.

    The event loop runs on a worker thread. In the main thread's loop, nbclient would take
    SIGINT for itself: each client shuts its kernel down from a signal handler, the last one
    registered replacing the others', and the interrupted cells end in ZMQ errors. Off the main
    thread it installs no handler; Ctrl-C reaches this thread, and each ``NotebookClient`` shuts
    its kernel down as the cancelled run unwinds.
    """
    loop = asyncio.new_event_loop()
    started, finished = threading.Event(), threading.Event()
    outcome = {}

    def worker():
        asyncio.set_event_loop(loop)
        outcome["task"] = loop.create_task(make_coroutine())
        started.set()
        try:
            outcome["result"] = loop.run_until_complete(outcome["task"])
        except BaseException as err:  # noqa: BLE001 -- handed to the main thread as it is
            outcome["error"] = err
        finally:
            leftover = asyncio.all_tasks(loop)  # e.g. an on_interrupt() that came too late
            for task in leftover:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            finished.set()

    thread = threading.Thread(target=worker, name="notebook-runs", daemon=True)
    thread.start()
    # Waiting on an Event, not Thread.join: in Python 3.11 a join interrupted by Ctrl-C marks the
    # thread as stopped while it still runs (the bpo-45274 fix), and later joins return at once.
    try:
        while not finished.wait(0.2):
            pass
    except KeyboardInterrupt:
        print("interrupted: stopping the kernels ...", file=sys.stderr, flush=True)
        started.wait()
        try:
            asyncio.run_coroutine_threadsafe(on_interrupt(), loop)
            if not finished.wait(grace):
                loop.call_soon_threadsafe(outcome["task"].cancel)
        except RuntimeError:  # the loop closed meanwhile: the run is over
            pass
        finished.wait()
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def execute_notebooks(paths, frameworks=FRAMEWORKS, jobs=2, timeout=CELL_TIMEOUT, force=False):
    """Run and merge the (notebook, framework) pairs whose outputs may be out of date.

    A pair runs when something that can change its outputs changed since its stored outputs
    were made (see ``execution_key``), or always with ``force``. ``jobs`` kernels run at a
    time. A notebook whose run fails under any framework is left untouched. Returns
    ``{path: [frameworks executed]}``; raises NotebookError listing all failed notebooks, and
    Interrupted (naming the notebooks left unchanged) on Ctrl-C, after the kernels shut down.
    """
    try:
        require_kernels(frameworks)
    except KernelError as err:
        raise NotebookError(str(err)) from None
    paths = [Path(p) for p in paths]
    done = {}
    _STOPPING.clear()

    async def run_one(path, slots):
        done[path] = await _execute_notebook(path, frameworks, timeout, slots, force)
        return done[path]

    async def run_all():
        slots = asyncio.Semaphore(jobs)
        return await asyncio.gather(*(run_one(p, slots) for p in paths), return_exceptions=True)

    try:
        results = _run_interruptibly(run_all, _interrupt_cells)
    except KeyboardInterrupt:
        raise Interrupted([_readable(p) for p in paths if p not in done]) from None
    errors = [r for r in results if isinstance(r, BaseException)]
    for err in errors:
        if not isinstance(err, NotebookError):
            raise err
    if errors:
        raise NotebookError("\n\n".join(str(err) for err in errors))
    executed = dict(zip(paths, results))
    ran = sum(len(fws) for fws in executed.values())
    print(
        f"executed {ran} of {len(paths) * len(frameworks)} (notebook, framework) pair(s); "
        f"{len(paths) * len(frameworks) - ran} skipped as current"
    )
    return executed
