"""Resolve requirements/*.in into hashed lock files, and mirror the pins into the conda files.

    python -m d2l_tools lock [--upgrade] [main|mxnet ...]      (what `make lock` runs)

Resolution is uv's: ``uv pip compile --universal --fork-strategy fewest --generate-hashes``.

- ``--universal``: one lock file per environment serves every Python it supports (main:
  3.11-3.13, mxnet: 3.10-3.11) and every platform; where a package must differ, its lines
  carry environment markers. One file per Python version would be three files to keep in step.
- ``--fork-strategy fewest``: one version of a package for all those Pythons where one exists
  (uv's default takes the newest per Python), so the stored notebook outputs do not depend on
  which Python a reader has.
- ``--generate-hashes``: pip installs the locks with ``--require-hashes``. torch is the
  exception, installed from requirements/torch.txt, which says why.

Existing pins are kept where they still satisfy the .in file (uv reads the old lock as
preferences); ``--upgrade`` re-resolves everything to the newest versions. The one step of
our own: each pin that the .in file explains gets that comment above it, and the pip section
of environment.yml / environment-mxnet.yml is rewritten with the locked versions for the
conda file's Python. Needs the package index; nothing else in the project does.
"""

import argparse
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement

from d2l_tools.envs import ENVIRONMENTS, REPO, REQUIREMENTS
from d2l_tools.files import write_atomic

RESOLUTION = ["--universal", "--fork-strategy", "fewest", "--generate-hashes"]  # the module docstring says why


def normalise(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def in_file_lines(in_file):
    """(requirement text, comment) for each requirement line of a .in or requirements file."""
    for line in Path(in_file).read_text().splitlines():
        text, _, comment = line.partition("#")
        if text.strip():
            yield text.strip(), comment.strip()


def requirement_names(in_file):
    """Package names listed in a .in file, as spelled there, in order."""
    return [Requirement(text).name for text, _ in in_file_lines(in_file)]


def linux_cpython(python):
    """Marker environment of CPython `python` ("3.11") on x86-64 Linux, where the project runs."""
    return {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "platform_machine": "x86_64",
    }


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    marker: Marker | None
    hashes: tuple

    def applies_to(self, python):
        return self.marker is None or self.marker.evaluate(linux_cpython(python))


def read_lock(path):
    """The pins of a lock or requirements file: ``name==version [; marker] [--hash=...]`` entries,
    whose options may continue over backslash-ended lines."""
    pins, logical = [], ""
    for line in Path(path).read_text().splitlines():
        line = line.split(" #")[0] if not line.lstrip().startswith("#") else ""
        logical += line.rstrip().removesuffix("\\")
        if line.rstrip().endswith("\\"):
            continue
        if logical.strip():
            spec, *options = re.split(r"\s+(?=--)", logical.strip())
            requirement = Requirement(spec)
            exact = [s.version for s in requirement.specifier if s.operator == "=="]
            if len(requirement.specifier) != 1 or not exact:
                raise ValueError(f"{Path(path).name}: {spec!r} is not pinned to one exact version")
            hashes = tuple(o.split("=", 1)[1] for o in options if o.startswith("--hash="))
            pins.append(Pin(normalise(requirement.name), exact[0], requirement.marker, hashes))
        logical = ""
    return pins


def read_pins(path, python):
    """{normalised name: version} that a lock or requirements file installs on Linux CPython `python`."""
    pins = {}
    for pin in read_lock(path):
        if pin.applies_to(python):
            if pins.get(pin.name, pin.version) != pin.version:
                raise ValueError(f"{Path(path).name} pins {pin.name} twice for Python {python}")
            pins[pin.name] = pin.version
    return pins


def environment_pins(env, python):
    """Everything `make setup` pins into an environment: its lock and its unhashed extra file."""
    pins = read_pins(env.lock_file, python)
    if env.apart:
        pins.update(read_pins(REQUIREMENTS / env.apart, python))
    return pins


def lock_header(env):
    relative = env.in_file.relative_to(REPO)
    lines = [
        f"# Exact versions and hashes for {env.venv}, for Python {env.pythons[0]}-{env.pythons[-1]}.",
        f"# Written by `make lock` (uv pip compile {' '.join(RESOLUTION)} --python-version {env.pythons[0]})",
        f"# from {relative}: edit that file, not this one. `make setup` installs it with --require-hashes.",
    ]
    if env.apart:
        lines.append(f"# torch is not here: requirements/{env.apart} says why.")
    return "\n".join(lines) + "\n"


def add_reasons(compiled, in_file):
    """Put each pin that the .in file explains under a comment with that explanation."""
    reasons = {
        normalise(Requirement(text).name): f"# {text}: {comment}" for text, comment in in_file_lines(in_file) if comment
    }
    out = []
    for line in compiled.splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", line)
        if match and normalise(match.group(1)) in reasons:
            out.append(reasons[normalise(match.group(1))])
        out.append(line)
    return "\n".join(out) + "\n"


def compile_lock(env, upgrade=False):
    """Run uv on env's .in file and write its lock file (header, reasons, uv's output)."""
    with tempfile.TemporaryDirectory(dir=REQUIREMENTS, prefix=".lock-") as tmp:
        output = Path(tmp) / env.lock_file.name
        if env.lock_file.exists() and not upgrade:
            shutil.copyfile(env.lock_file, output)  # uv keeps these versions where they still fit
        command = [
            sys.executable,
            "-m",
            "uv",
            "pip",
            "compile",
            str(env.in_file.relative_to(REPO)),
            *RESOLUTION,
            "--python-version",
            env.pythons[0],
            "--no-header",
            "--quiet",
            "--output-file",
            str(output),
        ]
        if upgrade:
            command.append("--upgrade")
        subprocess.run(command, cwd=REPO, check=True)
        compiled = output.read_text()
    write_atomic(env.lock_file, lock_header(env) + add_reasons(compiled, env.in_file))


def conda_python(conda_file):
    match = re.search(r"^\s*-\s*python=(\d+\.\d+)\s*$", conda_file.read_text(), re.M)
    if not match:
        raise ValueError(f"{conda_file.name} asks for no python=X.Y")
    return match.group(1)


def write_conda_file(env):
    """Rewrite the pip section (the file's last part) with the pins for the conda file's Python."""
    conda_file = REPO / env.conda_file
    text = conda_file.read_text()
    head, marker, tail = text.partition("\n  - pip:\n")
    if not marker or re.search(r"^\S", tail, re.M) or re.search(r"^  - ", tail, re.M):
        raise ValueError(f"{conda_file.name}: expected the pip section (`  - pip:`) to end the file")
    python = conda_python(conda_file)
    pins = environment_pins(env, python)
    names = (requirement_names(REQUIREMENTS / env.apart) if env.apart else []) + requirement_names(env.in_file)
    missing = [name for name in names if normalise(name) not in pins]
    if missing:
        raise ValueError(f"{env.lock_file.name} has no pin for {', '.join(missing)} on Python {python}")
    entries = [f"{name}=={pins[normalise(name)]}" for name in names] + ["-e ."]
    write_atomic(conda_file, head + marker + "".join(f"      - {entry}\n" for entry in entries))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m d2l_tools lock", description=__doc__.split("\n")[0])
    parser.add_argument(
        "environments", nargs="*", metavar="ENV", help=f"which lock files ({', '.join(ENVIRONMENTS)}; default: all)"
    )
    parser.add_argument("--upgrade", action="store_true", help="re-resolve to the newest versions")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.environments) - set(ENVIRONMENTS))
    if unknown:
        parser.error(f"unknown environment(s) {', '.join(unknown)}; choose from {', '.join(ENVIRONMENTS)}")
    if importlib.util.find_spec("uv") is None:
        sys.exit(
            f"error: uv is not installed in {sys.executable}; it is in requirements/main.in, "
            f"so `make setup` puts it into .venv (then run `make lock`)"
        )
    for name in args.environments or list(ENVIRONMENTS):
        env = ENVIRONMENTS[name]
        print(f"resolving {env.in_file.relative_to(REPO)} ...", flush=True)
        compile_lock(env, upgrade=args.upgrade)
        write_conda_file(env)
        print(f"wrote {env.lock_file.relative_to(REPO)} and {env.conda_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
