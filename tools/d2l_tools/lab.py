"""JupyterLab for readers: one folder per framework, the tabbed source apart (``make lab``).

    python -m d2l_tools lab [--src chapter_mlp] [--out lab] [--ip 127.0.0.1] [--port 8888]
                            [--prepare-only]

Writes, then serves ``--out`` (git-ignored):

    lab/README.md                   which folder to open
    lab/PyTorch/ MXNet/ TensorFlow/ JAX/
        mlp.ipynb ...               that framework's cells and stored outputs only, no ``%%tab``
        img/                        lines, its d2l kernel preset in the notebook's metadata
    lab/authors-tabbed-source       a link to chapter_mlp/: the tabbed notebooks, all four
                                    frameworks in one file; edits there change the book

Why this layout: a reader picks a framework once, by folder, and then sees only that
framework's code and outputs, with the right kernel starting by itself. Folders are named
by the framework's label so the file browser reads like the book's tabs. The tabbed source
stays reachable for authors, under a name that says it is theirs, and is the real source
rather than a copy, so nothing has to be merged back.

A reader's copies are theirs: each file written here is recorded with a fingerprint in
``lab/.d2l-lab.json``. A later run replaces a file only while it still has the recorded
content; a file the reader changed (edited, ran and saved) is kept, and when the chapter has
a newer version of it the run says so and how to get that version instead. A notebook's
fingerprint covers its cells (sources and outputs) and kernel, not the metadata JupyterLab
adds on opening (language_info, cell ids), so opening a notebook does not make it the
reader's.
"""

import argparse
import hashlib
import json
import os
import secrets
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from d2l_shim import FRAMEWORK_INFO, FRAMEWORKS
from d2l_tools.cells import DEFAULT_SRC, NotebookError, find_notebooks, notebook_text, read_notebook
from d2l_tools.envs import ENVIRONMENTS, REPO
from d2l_tools.files import write_atomic
from d2l_tools.split import split_notebook

VENV = REPO / ENVIRONMENTS["main"].venv  # JupyterLab runs from the main environment
DEFAULT_OUT = "lab"
MANIFEST = ".d2l-lab.json"
AUTHORS_LINK = "authors-tabbed-source"
LOCAL_IP = "127.0.0.1"
DEFAULT_PORT = 8888


def folder_name(framework):
    return FRAMEWORK_INFO[framework].label


def readme_text(notebooks):
    names = ", ".join(f"`{path.name}`" for path in notebooks)
    folders = ", ".join(f"`{folder_name(fw)}/`" for fw in FRAMEWORKS)
    return f"""# The MLP chapter in JupyterLab

Open the folder of your framework ({folders}) and start with `mlp.ipynb`.
Each folder holds the chapter's notebooks ({names}) with only that framework's
code and the outputs it printed when the book was built; the notebook starts its framework's
d2l kernel by itself. *Run > Run All Cells* runs a notebook from the top.

These are your copies: `make lab` never overwrites a notebook you changed. To get the
chapter's version of one back, rename or delete your copy and run `make lab` again.

`{AUTHORS_LINK}/` is the book's source for authors: every code cell once per framework
(`%%tab` cells), run under any of the four d2l kernels. Changes there change the book.
"""


# ---------------------------------------------------------------------------------------------
# Writing the reader's folders


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def fingerprint(rel, data):
    """What identifies a file's content: the SHA-256 of its bytes, or of a notebook's cells.

    Returns None for a notebook that does not parse (it is then the reader's, and kept).
    """
    if not rel.endswith(".ipynb"):
        return sha256(data)
    try:
        nb = json.loads(data)
        cells = [
            [
                cell["cell_type"],
                "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"],
                cell.get("outputs", []),
                cell.get("attachments", {}),
            ]
            for cell in nb["cells"]
        ]
        kernel = nb.get("metadata", {}).get("kernelspec", {}).get("name")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return sha256(json.dumps([kernel, cells], sort_keys=True).encode("utf-8"))


@dataclass
class Report:
    written: list = field(default_factory=list)  # new or updated (the reader had not changed them)
    kept: list = field(default_factory=list)  # changed by the reader while the chapter's changed too
    removed: list = field(default_factory=list)  # no longer in the chapter, unchanged by the reader
    notes: list = field(default_factory=list)


def wanted_files(src):
    """``{relative path: bytes}`` of every file the reader's folders should hold."""
    src = Path(src)
    notebooks = find_notebooks(src)
    images = sorted(p for p in (src / "img").rglob("*") if p.is_file()) if (src / "img").is_dir() else []
    files = {"README.md": readme_text(notebooks).encode("utf-8")}
    for path in notebooks:
        nb = read_notebook(path)
        for framework in FRAMEWORKS:
            try:
                split = split_notebook(nb, framework)
            except NotebookError as err:
                raise NotebookError(f"{path}: {err}") from None
            files[f"{folder_name(framework)}/{path.name}"] = notebook_text(split).encode("utf-8")
    for image in images:
        data = image.read_bytes()
        for framework in FRAMEWORKS:
            files[f"{folder_name(framework)}/{image.relative_to(src).as_posix()}"] = data
    return files


def read_manifest(out):
    path = out / MANIFEST
    if not path.exists():
        return {}
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))["files"]
    except (ValueError, KeyError, TypeError) as err:
        # Without a record every existing file counts as the reader's: nothing is lost.
        print(f"warning: {path} is unreadable ({err}); treating every existing file as yours", file=sys.stderr)
        return {}
    return {str(k): str(v) for k, v in recorded.items()}


def write_manifest(out, recorded):
    text = (
        json.dumps(
            {
                "note": "written by `make lab`: fingerprint of each file as it last wrote it",
                "files": dict(sorted(recorded.items())),
            },
            indent=1,
        )
        + "\n"
    )
    write_atomic(out / MANIFEST, text)


def sync(wanted, out, recorded):
    """Bring ``out`` to ``wanted`` without touching a file the reader changed; updates ``recorded``.

    The record of a file is updated right after the file is written, so an interrupted run
    leaves no file that a later run would take for the reader's.
    """
    report = Report()
    for rel, data in wanted.items():
        target = out / rel
        if target.is_symlink() or (target.exists() and not target.is_file()):
            report.notes.append(f"{target} is not a plain file; left alone")
            continue
        if target.exists():
            current = target.read_bytes()
            if current == data:
                recorded[rel] = fingerprint(rel, data)
                continue
            mine = fingerprint(rel, current)
            if mine is not None and mine == fingerprint(rel, data):
                recorded[rel] = mine  # the same content (JupyterLab's metadata aside): leave it
                continue
            if mine is None or recorded.get(rel) != mine:
                # The reader's: kept. Worth a word only when the chapter has a new version of it.
                if recorded.get(rel) != fingerprint(rel, data):
                    report.kept.append(target)
                continue
        write_atomic(target, data)
        recorded[rel] = fingerprint(rel, data)
        write_manifest(out, recorded)
        report.written.append(target)
    for rel in sorted(set(recorded) - set(wanted)):
        target = out / rel
        if target.is_file() and not target.is_symlink() and fingerprint(rel, target.read_bytes()) != recorded[rel]:
            report.kept.append(target)  # the reader's work on a notebook the chapter dropped
            continue
        target.unlink(missing_ok=True)
        del recorded[rel]
        report.removed.append(target)
    write_manifest(out, recorded)
    return report


def link_authors_source(src, out, report):
    link = out / AUTHORS_LINK
    target = Path(os.path.relpath(Path(src).resolve(), out.resolve()))
    if link.is_symlink():
        if Path(os.readlink(link)) == target:
            return
        link.unlink()
    elif link.exists():
        report.notes.append(f"{link} exists and is not the link to {src}; left alone")
        return
    link.symlink_to(target, target_is_directory=True)


def prepare(src=DEFAULT_SRC, out=DEFAULT_OUT):
    """Write the reader's folders under ``out``; returns a Report."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    recorded = read_manifest(out)
    report = sync(wanted_files(src), out, recorded)
    link_authors_source(src, out, report)
    return report


def print_report(report, out):
    if report.written:
        print(f"lab: wrote {len(report.written)} file(s) under {out}/")
    for path in report.removed:
        print(f"lab: removed {path} (no longer in the chapter)")
    for note in report.notes:
        print(f"lab: {note}")
    if report.kept:
        print("lab: kept your changed copies (the chapter's version differs):")
        for path in report.kept:
            print(f"  {path}")
        print("  to get the chapter's version of one, rename or delete it and run `make lab` again")


# ---------------------------------------------------------------------------------------------
# Serving


def jupyter_lab_command(root, ip=LOCAL_IP, port=DEFAULT_PORT, open_browser=True):
    """The ``jupyter lab`` command line that serves ``root`` (``make lab`` and the lab test)."""
    command = [
        str(VENV / "bin" / "jupyter"),
        "lab",
        f"--ServerApp.root_dir={Path(root).resolve()}",
        f"--ServerApp.ip={ip}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",  # the URL printed below must be the one it serves
        f"--ServerApp.open_browser={open_browser}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # containers run as root; Jupyter refuses it otherwise
    return command


def private_dirs(state):
    """Environment settings that keep JupyterLab, its kernels and matplotlib out of the home
    folder: runtime files, config, settings, workspaces, IPython's history and the font cache
    all go under ``state`` (``make lab``: .cache/jupyterlab in the clone)."""
    state = Path(state)
    return {
        "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
        "JUPYTER_CONFIG_DIR": str(state / "config"),
        "JUPYTER_DATA_DIR": str(state / "data"),  # the d2l kernels are found in .venv all the same
        "JUPYTERLAB_SETTINGS_DIR": str(state / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(state / "workspaces"),
        "IPYTHONDIR": str(state / "ipython"),
        "MPLCONFIGDIR": str(state / "matplotlib"),
        "npm_config_cache": str(state / "npm"),  # JupyterLab asks `npm prefix --global`, which logs there
    }


def browser_host(ip):
    return LOCAL_IP if ip in ("", "0.0.0.0", "::", "*") else ip


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", default=DEFAULT_SRC, help="folder of the tabbed notebooks (default: %(default)s)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="folder JupyterLab serves (default: %(default)s)")
    parser.add_argument(
        "--ip",
        default=LOCAL_IP,
        help="address to listen on (default: %(default)s; 0.0.0.0 to reach it from outside a container)",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default: %(default)s)")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser")
    parser.add_argument("--prepare-only", action="store_true", help="write the folders, do not start JupyterLab")
    args = parser.parse_args(argv)
    try:
        report = prepare(args.src, args.out)
    except NotebookError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print_report(report, args.out)
    if args.prepare_only:
        return 0
    jupyter = VENV / "bin" / "jupyter"
    if not jupyter.exists() or shutil.which(str(jupyter)) is None:
        print(f"error: {jupyter} is missing: run `make setup` first", file=sys.stderr)
        return 1
    # A token of our own, so the URL can be printed before the server's log lines; passed in
    # the environment, where other users cannot read it the way they can a command line.
    token = os.environ.get("JUPYTER_TOKEN") or secrets.token_hex(24)
    url = f"http://{browser_host(args.ip)}:{args.port}/lab?token={token}"
    folders = ", ".join(f"{folder_name(fw)}/" for fw in FRAMEWORKS)
    print(f"\n==> JupyterLab on {args.out}/: open your framework's folder ({folders})")
    print(f"==> open {url}\n==> stop it with Ctrl-C\n", flush=True)
    os.environ["JUPYTER_TOKEN"] = token
    os.environ.update(private_dirs(REPO / ".cache" / "jupyterlab"))
    command = jupyter_lab_command(args.out, args.ip, args.port, open_browser=not args.no_browser)
    os.execv(command[0], command)


if __name__ == "__main__":
    sys.exit(main())
