"""The chapter in JupyterLab, as a reader uses it: Debian's Chromium driven by Playwright.

JupyterLab is served from ``.venv`` on 127.0.0.1 (token, temporary runtime, settings and
workspace folders) over the folders that ``make lab`` writes, from a copy of the chapter.
A reader opens a per-framework notebook, runs all cells, and sees every cell finish without
an error and the training cell draw its figure; re-running the training cell draws it again.
A notebook run under the generic Python kernel fails with one clear error line.

One framework by default (JAX, the quickest); ``D2L_LAB_FRAMEWORKS=all`` (or a comma list)
runs each. Screenshots go to ``build/screenshots/lab-*.png``. The server and its kernels are
stopped at the end whatever happens.

The first tests check ``make lab``'s folders without a browser: what they hold, and that a
reader's changed copy is never overwritten.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from urllib.parse import quote, urlsplit

import nbformat
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from test_browser import headless_chromium

from d2l_shim import FRAMEWORK_INFO, FRAMEWORKS
from d2l_tools import lab
from d2l_tools.cells import cell_tab
from d2l_tools.envs import REPO
from d2l_tools.kernels import DEFAULT_KERNEL, ONE_THREAD_ENV, display_name
from d2l_tools.text import strip_ansi

CHAPTER = REPO / "chapter_mlp"
SCREENSHOTS = REPO / "build" / "screenshots"
LOCAL_HOST = "127.0.0.1"
TRAINING_NOTEBOOK = "mlp-scratch.ipynb"
RUN_TIMEOUT_S = 900  # a whole training notebook on a busy 2-core machine
WAIT_MS = 60_000
GENERIC_KERNEL = "Python 3 (ipykernel)"


def lab_frameworks():
    configured = os.environ.get("D2L_LAB_FRAMEWORKS", "jax").strip().lower()
    if configured == "all":
        return list(FRAMEWORKS)
    names = [name.strip() for name in configured.split(",") if name.strip()]
    unknown = [name for name in names if name not in FRAMEWORKS]
    if unknown or not names:
        raise pytest.UsageError(
            f"D2L_LAB_FRAMEWORKS={configured!r}: use 'all' or a comma list of {', '.join(FRAMEWORKS)}"
        )
    return [fw for fw in FRAMEWORKS if fw in names]


# ---------------------------------------------------------------- make lab's folders


def copy_chapter(target):
    shutil.copytree(CHAPTER, target, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return target


def outputs_of(cell):
    """A cell's outputs without execution counts (the split notebook numbers its cells)."""
    return [{k: v for k, v in out.items() if k != "execution_count"} for out in cell.get("outputs", [])]


def test_lab_folders_hold_one_framework_each(tmp_path):
    src = copy_chapter(tmp_path / "chapter_mlp")
    out = tmp_path / "lab"
    lab.prepare(src, out)
    notebooks = sorted(p.name for p in src.glob("*.ipynb"))
    assert notebooks, "the chapter has no notebooks"
    folders = sorted(p.name for p in out.iterdir() if p.is_dir() and not p.is_symlink())
    assert folders == sorted(FRAMEWORK_INFO[fw].label for fw in FRAMEWORKS)
    for framework in FRAMEWORKS:
        folder = out / FRAMEWORK_INFO[framework].label
        assert sorted(p.name for p in folder.glob("*.ipynb")) == notebooks
        for image in (src / "img").iterdir():
            assert (folder / "img" / image.name).read_bytes() == image.read_bytes()
        for name in notebooks:
            tabbed = nbformat.read(src / name, as_version=4)
            nb = nbformat.read(folder / name, as_version=4)
            assert nb.metadata.kernelspec.name == f"d2l-{framework}"
            own = [c for c in tabbed.cells if c.cell_type != "code" or framework in cell_tab(c).frameworks]
            assert [c.cell_type for c in nb.cells] == [c.cell_type for c in own]
            assert not any(c.source.startswith("%%tab") for c in nb.cells), f"{name}: %%tab line left"
            # Its outputs are that framework's: the first stored output of each cell it runs.
            assert [outputs_of(c) for c in nb.cells] == [outputs_of(c) for c in own]
    authors = out / lab.AUTHORS_LINK
    assert authors.is_symlink() and authors.resolve() == src.resolve()
    assert "authors" in lab.AUTHORS_LINK and "tabbed" in lab.AUTHORS_LINK


def test_a_readers_changed_copy_is_kept_and_an_untouched_one_updated(tmp_path, capsys):
    src = copy_chapter(tmp_path / "chapter_mlp")
    out = tmp_path / "lab"
    lab.prepare(src, out)
    jax_dir = out / FRAMEWORK_INFO["jax"].label
    mine, untouched, opened = jax_dir / "mlp.ipynb", jax_dir / "mlp-concise.ipynb", jax_dir / "mlp-scratch.ipynb"
    # The reader edits one notebook and only opens another (JupyterLab adds metadata).
    nb = nbformat.read(mine, as_version=4)
    nb.cells[0].source += "\n\nMy notes."
    nbformat.write(nb, mine)
    nb = nbformat.read(opened, as_version=4)
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.7", "file_extension": ".py"}
    nbformat.write(nb, opened)
    my_bytes, opened_bytes = mine.read_bytes(), opened.read_bytes()
    # The chapter has not changed: nothing is rewritten and there is nothing to say.
    report = lab.prepare(src, out)
    assert (report.written, report.kept) == ([], [])
    assert (mine.read_bytes(), opened.read_bytes()) == (my_bytes, opened_bytes)
    # The chapter changes all three notebooks.
    for path in src.glob("*.ipynb"):
        tabbed = nbformat.read(path, as_version=4)
        tabbed.cells[0].source += "\n\nA new sentence."
        nbformat.write(tabbed, path)
    report = lab.prepare(src, out)
    assert mine.read_bytes() == my_bytes, "the reader's edited copy was overwritten"
    assert report.kept == [mine]
    for path in (untouched, opened):
        assert "A new sentence." in nbformat.read(path, as_version=4).cells[0].source
    assert opened.read_bytes() != opened_bytes
    # The run says what it kept and how to get the chapter's version.
    lab.print_report(report, out)
    said = capsys.readouterr().out
    assert str(mine) in said and "rename or delete" in said
    # Again: still kept, nothing else rewritten.
    report = lab.prepare(src, out)
    assert report.kept == [mine] and report.written == []
    # Deleting the copy brings the chapter's version back.
    mine.unlink()
    lab.prepare(src, out)
    assert "A new sentence." in nbformat.read(mine, as_version=4).cells[0].source


@pytest.mark.parametrize("uid", [0, 1000])
def test_jupyter_command_binds_the_address_it_is_given_and_allows_root_only_as_root(monkeypatch, uid):
    monkeypatch.setattr(os, "geteuid", lambda: uid)
    command = lab.jupyter_lab_command("lab")
    assert f"--ServerApp.ip={LOCAL_HOST}" in command and "--ServerApp.port_retries=0" in command
    assert ("--allow-root" in command) == (uid == 0)
    assert "--ServerApp.ip=0.0.0.0" in lab.jupyter_lab_command("lab", ip="0.0.0.0")


# ---------------------------------------------------------------- serving JupyterLab


def free_port():
    with socket.socket() as s:
        s.bind((LOCAL_HOST, 0))
        return s.getsockname()[1]


class Lab:
    def __init__(self, root, port, token, log):
        self.root, self.token, self.log = root, token, log
        self.base = f"http://{LOCAL_HOST}:{port}"

    def api(self, path, method="GET"):
        request = urllib.request.Request(
            f"{self.base}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def url(self, path):
        return f"{self.base}/lab/{path}?token={self.token}"

    def log_tail(self, lines=40):
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def stop_server(process, server):
    """Shut the kernels down through the server, then the server; kill what does not stop."""
    if process.poll() is None:
        try:
            for kernel in server.api("/api/kernels"):
                server.api(f"/api/kernels/{kernel['id']}", method="DELETE")
        except OSError:
            pass
        process.send_signal(signal.SIGTERM)  # jupyter_server then shuts down its kernels
        try:
            process.wait(30)
            return
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(10)


@contextmanager
def jupyter_lab(root, work):
    """JupyterLab from .venv on 127.0.0.1, as `make lab` starts it; yields a Lab."""
    token = os.urandom(16).hex()
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("D2L_FRAMEWORK", "D2L_PROGRESS", "SOURCE_DATE_EPOCH")
    }  # the reader's live board
    env.update(
        {
            "JUPYTER_TOKEN": token,
            # Nothing from or into the home folder, as `make lab` runs it (a HOME of our own shows it).
            **lab.private_dirs(work / "state"),
            "HOME": str(work / "home"),
            # One compute thread for the kernel: the browser and the server need the other core.
            **ONE_THREAD_ENV,
        }
    )
    # No "get Jupyter news?" prompt over the notebook in the screenshots.
    (work / "home").mkdir()
    settings = work / "state" / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    log = work / "jupyter-lab.log"
    command = lab.jupyter_lab_command(root, LOCAL_HOST, port, open_browser=False)
    with open(log, "w") as log_file:
        process = subprocess.Popen(
            command, env=env, cwd=work, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Lab(root, port, token, log)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                pytest.fail(f"jupyter lab exited with {process.returncode}:\n{server.log_tail()}")
            try:
                server.api("/api/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not answer within 120 s:\n{server.log_tail()}")
                time.sleep(0.5)
        yield server
    finally:
        stop_server(process, server)


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory):
    work = tmp_path_factory.mktemp("jupyterlab")
    src = copy_chapter(work / "chapter_mlp")  # the authors' link points here, not at the real source
    lab.prepare(src, work / "lab")
    with jupyter_lab(work / "lab", work) as server:
        yield server


@pytest.fixture(scope="module")
def browser():
    with headless_chromium() as chromium:
        yield chromium


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(WAIT_MS)
    # Only the local server: anything else is refused (there is no network to reach anyway).
    context.route(
        "**/*", lambda route: route.continue_() if urlsplit(route.request.url).hostname == LOCAL_HOST else route.abort()
    )
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def screenshot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tmp = SCREENSHOTS / f".lab-{name}.tmp.png"
    page.screenshot(path=str(tmp))
    os.replace(tmp, SCREENSHOTS / f"lab-{name}.png")


# ---------------------------------------------------------------- driving JupyterLab

CODE_PROMPTS = """() => Array.from(document.querySelectorAll(
    '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell.jp-CodeCell .jp-InputArea-prompt'))
    .map(el => el.textContent.trim())"""


def wait_for_kernel(page, label):
    """The visible notebook's kernel is ``label`` and idle."""
    page.wait_for_function(
        """label => {
            const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
            const name = panel && panel.querySelector('.jp-KernelName');
            const state = panel && panel.querySelector('.jp-Notebook-ExecutionIndicator');
            return name && name.textContent.trim() === label && state && state.dataset.status === 'idle';
        }""",
        arg=label,
        timeout=120_000,
    )


def open_notebook(page, server, rel, kernel_label):
    # ?reset: a fresh workspace, not the notebooks an earlier test left open
    page.goto(server.url("tree/" + quote(rel)) + "&reset")
    page.wait_for_selector(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")
    wait_for_kernel(page, kernel_label)


def menu(page, top, command):
    """Click a main-menu entry, found by its command id (stable across JupyterLab's wording)."""
    page.locator("#jp-MainMenu .lm-MenuBar-item", has_text=top).first.click()
    page.locator(f'.lm-Menu-item[data-command="{command}"]').first.click()


def cell_locator(page, index):
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell").nth(index)


def wait_until_run_stops(page, timeout_s=RUN_TIMEOUT_S):
    """After Run All on cleared outputs: every code cell numbered, or none busy and an error shown."""
    page.wait_for_function(
        """() => {
            const prompts = Array.from(document.querySelectorAll(
                '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell.jp-CodeCell .jp-InputArea-prompt'))
                .map(el => el.textContent.trim());
            if (prompts.some(p => p.includes('*'))) return false;
            if (prompts.every(p => /^\\[\\d+\\]:$/.test(p))) return true;
            return document.querySelector(
                '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]') !== null;
        }""",
        timeout=timeout_s * 1000,
        polling=500,
    )


def save_and_read(page, path):
    menu(page, "File", "docmanager:save")
    page.wait_for_function("() => !document.querySelector('.lm-TabBar-tab.jp-mod-current.jp-mod-dirty')")
    deadline = time.monotonic() + 30
    while True:  # the server writes the file a moment after the tab stops being dirty
        try:
            return nbformat.read(path, as_version=4)
        except (ValueError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def figures_shown(page, index):
    """Loaded images (or SVG plots) in the outputs of cell ``index``."""
    cell = cell_locator(page, index)
    cell.scroll_into_view_if_needed()
    return cell.evaluate("""cell => {
        const imgs = Array.from(cell.querySelectorAll('.jp-OutputArea-output img'))
            .filter(img => img.complete && img.naturalWidth > 0 && img.getBoundingClientRect().height > 50);
        const svgs = Array.from(cell.querySelectorAll('.jp-OutputArea-output svg'))
            .filter(svg => svg.getBoundingClientRect().height > 50);
        return imgs.length + svgs.length;
    }""")


def cell_outputs(page):
    """The text of each output of each code cell of the visible notebook, in order."""
    return page.evaluate("""() => Array.from(document.querySelectorAll(
        '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell.jp-CodeCell')).map(cell =>
        Array.from(cell.querySelectorAll('.jp-OutputArea-output')).map(el => el.textContent))""")


def has_image(cell):
    return any(
        o.output_type in ("display_data", "execute_result")
        and any(mime.startswith("image/") for mime in o.get("data", {}))
        for o in cell.outputs
    )


def errors_in(nb):
    return [
        (i, o.ename, strip_ansi(o.evalue)[:200])
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        for o in cell.outputs
        if o.output_type == "error"
    ]


# ---------------------------------------------------------------- the browser tests


def test_launcher_starts_a_d2l_kernel(lab_server, page):
    assert lab_server.api("/api/kernelspecs")["default"] == DEFAULT_KERNEL
    page.goto(lab_server.url("") + "&reset")
    page.wait_for_selector(".jp-Launcher .jp-LauncherCard")
    first = page.locator('.jp-LauncherCard[data-category="Notebook"]').first
    assert first.get_attribute("title") == display_name(DEFAULT_KERNEL.removeprefix("d2l-"))
    # The file browser shows the framework folders and the authors' folder.
    entries = page.locator(".jp-DirListing-item .jp-DirListing-itemText").all_inner_texts()
    expected = {FRAMEWORK_INFO[fw].label for fw in FRAMEWORKS} | {lab.AUTHORS_LINK, "README.md"}
    assert expected <= set(entries), entries
    screenshot(page, "launcher")


@pytest.mark.parametrize("framework", lab_frameworks())
def test_reader_runs_the_training_notebook(lab_server, page, framework):
    folder = FRAMEWORK_INFO[framework].label
    rel = f"{folder}/{TRAINING_NOTEBOOK}"
    path = lab_server.root / rel
    stored = nbformat.read(path, as_version=4)
    # The cells that train with the live board: they call fit and the book stored their figure.
    plotted = [
        i for i, c in enumerate(stored.cells) if c.cell_type == "code" and "trainer.fit(" in c.source and has_image(c)
    ]
    assert plotted, f"{rel}: no cell calls trainer.fit and stores a figure"
    training = plotted[0]

    open_notebook(page, lab_server, rel, display_name(framework))
    try:  # JupyterLab attaches the cells of a long notebook a few at a time
        page.wait_for_function(
            "n => document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell').length === n",
            arg=len(stored.cells),
        )
    except PlaywrightTimeout:
        shown = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell").count()
        pytest.fail(f"{rel}: JupyterLab shows {shown} cells, the notebook has {len(stored.cells)}")
    sources = page.locator(
        ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell.jp-CodeCell .jp-InputArea-editor"
    ).all_inner_texts()
    assert not any("%%tab" in s for s in sources), "the reader's notebook shows %%tab lines"
    screenshot(page, f"{framework}-opened")

    # Run everything from cleared outputs, so every output on the page comes from this run.
    menu(page, "Edit", "editmenu:clear-all")
    page.wait_for_function(f"() => ({CODE_PROMPTS})().every(p => p === '[ ]:')")
    start = time.monotonic()
    menu(page, "Run", "runmenu:run-all")
    wait_until_run_stops(page)
    took = time.monotonic() - start
    nb = save_and_read(page, path)
    assert not errors_in(nb), f"{rel}: cells with errors after Run All: {errors_in(nb)}"
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    assert all(counts), f"{rel}: cells that did not run: {[i for i, n in enumerate(counts) if not n]}"
    for index in plotted:
        assert has_image(nb.cells[index]), f"{rel}: the training cell {index} stored no figure"
        assert figures_shown(page, index) >= 1, f"{rel}: the training cell {index} shows no figure"
    cell_locator(page, training).scroll_into_view_if_needed()
    screenshot(page, f"{framework}-trained")
    print(f"{rel}: Run All took {took:.0f} s")

    # A reader re-runs the training cell: the new run must draw its own figure.
    before = nb.cells[training].execution_count
    cell_locator(page, training).locator(".jp-InputArea-prompt").click()
    menu(page, "Run", "notebook:run-cell")
    page.wait_for_function(
        """([index, before]) => {
            const cell = document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell')[index];
            const m = /^\\[(\\d+)\\]:$/.exec(cell.querySelector('.jp-InputArea-prompt').textContent.trim());
            return m && Number(m[1]) > before;
        }""",
        arg=[training, before],
        timeout=RUN_TIMEOUT_S * 1000,
        polling=500,
    )
    nb = save_and_read(page, path)
    assert not errors_in(nb), f"{rel}: the re-run failed: {errors_in(nb)}"
    shown = figures_shown(page, training)
    screenshot(page, f"{framework}-retrained")
    assert shown >= 1 and has_image(nb.cells[training]), (
        f"{rel}: after re-running the training cell it shows no figure (does the board draw into "
        "the display of the previous run?)"
    )


def test_wrong_kernel_shows_one_clear_error(lab_server, page):
    rel = f"{lab.AUTHORS_LINK}/mlp.ipynb"
    open_notebook(page, lab_server, rel, display_name(FRAMEWORKS[0]))
    menu(page, "Kernel", "kernelmenu:change")
    dialog = page.locator(".jp-Dialog")
    dialog.locator("select").select_option(label=GENERIC_KERNEL)
    dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
    wait_for_kernel(page, GENERIC_KERNEL)
    menu(page, "Edit", "editmenu:clear-all")
    page.wait_for_function(f"() => ({CODE_PROMPTS})().every(p => p === '[ ]:')")
    menu(page, "Run", "runmenu:run-all")
    wait_until_run_stops(page, timeout_s=120)
    # The failing cell is the first %%tab cell, the second code cell.
    error_cell = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell.jp-CodeCell").nth(1)
    error_cell.scroll_into_view_if_needed()
    screenshot(page, "wrong-kernel")
    outputs = [[strip_ansi(t).strip() for t in cell] for cell in cell_outputs(page)]
    texts = [t for cell in outputs for t in cell]
    prompts = page.evaluate(CODE_PROMPTS)
    errors = [(i, t) for i, cell in enumerate(outputs) for t in cell if "Error" in t]
    assert len(errors) == 1, f"expected one error output, got (code cell, text) {errors}; prompts {prompts[:5]}..."
    errors = [t for _, t in errors]
    lines = errors[0].splitlines()
    assert len(lines) == 1 and lines[0].startswith("NoFrameworkError: no framework selected"), lines
    assert "Kernel > Change Kernel" in lines[0] and display_name(FRAMEWORKS[0]) in lines[0]
    assert sum(t.count("no framework selected") for t in texts) == 1, "the message is shown more than once"
    # Run All stopped there: the first code cell ran, the failing one is the second.
    assert prompts[0] == "[1]:" and prompts[1] == "[2]:" and all(p == "[ ]:" for p in prompts[2:]), prompts


def test_nothing_is_written_to_the_home_folder(lab_server):
    # Last in the file: the server has started kernels, run notebooks and saved settings by now.
    home = lab_server.root.parent / "home"
    assert home.is_dir() and not any(home.rglob("*")), sorted(map(str, home.rglob("*")))[:10]
