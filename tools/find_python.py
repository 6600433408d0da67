#!/usr/bin/env python3
"""Print the path of a Python that can run MXNet 1.9.1 (Python 3.10 or 3.11), for .venv-mxnet.

    python3 tools/find_python.py          # prints e.g. /usr/bin/python3.11, or exits 1

Why 3.10-3.11: MXNet 1.9.1 needs numpy<1.24, which has no wheels past Python 3.11 (and its
source build needs distutils, removed in 3.12); d2l_shim itself needs 3.10 or newer.

Where it looks, in order (3.11 anywhere before 3.10 anywhere):
  1. $MXNET_PYTHON, when set: a path or a command name. If it is not a Python 3.10/3.11 that
     can make a venv, that is an error (no silent fallback to a search).
  2. python3.11, python3.10 and python3 on PATH.
  3. pyenv's versions: $PYENV_ROOT, else `pyenv root`, else ~/.pyenv.
  4. uv's managed Pythons: `uv python find` when uv is on PATH, and uv's install folder
     ($UV_PYTHON_INSTALL_DIR, else $XDG_DATA_HOME/uv/python, else ~/.local/share/uv/python).

Every candidate is run once to ask its version: a pyenv shim such as python3.11 exists on
PATH even when that version is not active, and then fails. It prints the interpreter's own
sys.executable, not the shim.

Standard library only and Python 3.8+ syntax: `make` runs it with whatever python3 it has,
before any virtual environment exists.
"""

import glob
import json
import os
import shutil
import subprocess
import sys

WANTED = ((3, 11), (3, 10))  # in order of preference
PROBE = (
    "import json, sys, importlib.util as u; print(json.dumps({'version': list(sys.version_info[:2]), "
    "'executable': sys.executable, 'venv': u.find_spec('ensurepip') is not None}))"
)
PROBE_TIMEOUT_S = 20

WHY = (
    "MXNet 1.9.1 needs numpy<1.24, which has no wheels past Python 3.11 "
    "(and its source build needs distutils, removed in Python 3.12)"
)
HOW = """Install one, then run make again; any of these works:
    pyenv install 3.11
    uv python install 3.11
    sudo apt install python3.11 python3.11-venv    (Debian/Ubuntu; older Ubuntu: the deadsnakes PPA)
    brew install python@3.11                       (macOS)
  or name one: make setup MXNET_PYTHON=/path/to/python3.11
  (.venv itself, and `make book`, run on your python3 whatever its version.)"""


def version_text(version):
    return "{}.{}".format(*version)


def probe(command):
    """{'version': [3, 11], 'executable': ..., 'venv': bool} for an interpreter, or None if it
    cannot be run or does not answer like a Python."""
    try:
        result = subprocess.run([command, "-c", PROBE], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    try:
        info = json.loads(result.stdout.strip().splitlines()[-1])
        info["version"] = tuple(info["version"][:2])
        return info
    except (ValueError, IndexError, KeyError, TypeError):
        return None


def pyenv_root():
    if os.environ.get("PYENV_ROOT"):
        return os.environ["PYENV_ROOT"]
    pyenv = shutil.which("pyenv")
    if pyenv:
        try:
            root = subprocess.run(
                [pyenv, "root"], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            root = ""
        if root:
            return root
    return os.path.expanduser("~/.pyenv")


def uv_python_dir():
    if os.environ.get("UV_PYTHON_INSTALL_DIR"):
        return os.environ["UV_PYTHON_INSTALL_DIR"]
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return os.path.join(data_home, "uv", "python")


def newest_first(paths):
    """Sort interpreter paths under versioned folders (3.11.2, cpython-3.11.10-...) newest first."""

    def key(path):
        digits = [int(part) for part in "".join(c if c.isdigit() else " " for c in path).split()]
        return digits

    return sorted(set(paths), key=key, reverse=True)


def uv_find(version):
    uv = shutil.which("uv")
    if not uv:
        return []
    try:
        result = subprocess.run(
            [uv, "python", "find", version_text(version)], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    found = result.stdout.strip()
    return [found] if result.returncode == 0 and found else []


def candidates(version):
    """Commands or paths that may be a Python `version`, in the order they are tried."""
    name = "python" + version_text(version)
    for command in (name, "python3"):
        path = shutil.which(command)
        if path:
            yield path
    pattern = os.path.join(pyenv_root(), "versions", version_text(version) + ".*", "bin", "python3")
    yield from newest_first(glob.glob(pattern))
    yield from uv_find(version)
    pattern = os.path.join(uv_python_dir(), "cpython-" + version_text(version) + ".*", "bin", "python3")
    yield from newest_first(glob.glob(pattern))


def from_environment(value):
    """The interpreter that MXNET_PYTHON names, checked; exits with a message if it is unusable."""
    command = shutil.which(value) or value
    info = probe(command)
    if info is None:
        sys.exit(
            f"error: MXNET_PYTHON={value} could not be run as a Python interpreter. "
            f"Point it at a Python 3.11 (or 3.10), or unset it to let `make` search."
        )
    if info["version"] not in WANTED:
        sys.exit(
            f"error: MXNET_PYTHON={value} is Python {version_text(info['version'])}, but the MXNet "
            f"environment needs Python 3.10 or 3.11: {WHY}. Point MXNET_PYTHON at a Python 3.11 "
            f"(or 3.10), or unset it to let `make` search."
        )
    if not info["venv"]:
        sys.exit(
            f"error: MXNET_PYTHON={value} is Python {version_text(info['version'])} but cannot make "
            f"a virtual environment (no ensurepip); on Debian/Ubuntu install "
            f"python{version_text(info['version'])}-venv."
        )
    return info["executable"]


def search():
    """(path of the first usable interpreter or None, notes on candidates that were rejected)."""
    probed, notes = {}, []
    for version in WANTED:
        for command in candidates(version):
            real = os.path.realpath(command)
            if real not in probed:
                probed[real] = probe(command)
            info = probed[real]
            if info is None or info["version"] != version:
                continue
            if not info["venv"]:
                notes.append(
                    f"{command} is Python {version_text(version)} but lacks ensurepip "
                    f"(Debian/Ubuntu: apt install python{version_text(version)}-venv)"
                )
                continue
            return info["executable"], notes
    return None, notes


def main():
    if os.environ.get("MXNET_PYTHON"):
        print(from_environment(os.environ["MXNET_PYTHON"]))
        return
    found, notes = search()
    if found:
        print(found)
        return
    looked = (
        f"python3.11, python3.10 and python3 on PATH; pyenv's versions in {pyenv_root()}; "
        f"uv's Pythons in {uv_python_dir()}" + (" and `uv python find`" if shutil.which("uv") else "")
    )
    rejected = "".join(f"\n  Rejected: {note}." for note in notes)
    sys.exit(
        f"error: the MXNet environment (.venv-mxnet) needs Python 3.11 or 3.10, and none was found.\n"
        f"  Why: {WHY}.\n  Looked at: {looked}.{rejected}\n  {HOW}"
    )


if __name__ == "__main__":
    main()
