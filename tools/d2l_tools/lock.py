"""Re-resolve the environments' lock files and the conda files that mirror them (``make lock``).

    python -m d2l_tools.lock [main|mxnet ...]

For each environment, installs ``requirements/<env>.in`` into a throw-away venv, freezes
it into ``requirements/<env>.lock`` (keeping the lock's header comments, which say why
pins are there) and rewrites the pip section of ``environment.yml`` /
``environment-mxnet.yml`` with the same versions. Needs the package index; nothing else
in the project does.
"""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ENVIRONMENTS = {"main": "environment.yml", "mxnet": "environment-mxnet.yml"}


def normalise(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(in_file):
    """Package names listed in a .in file, in order."""
    names = []
    for line in Path(in_file).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            names.append(re.split(r"[<>=!~;\[ ]", line)[0])
    return names


def read_pins(path):
    """{normalised name: version} of the ``name==version`` lines in a lock or conda file."""
    pins = {}
    for line in Path(path).read_text().splitlines():
        match = re.match(r"^\s*(?:-\s+)?([A-Za-z0-9_.\-]+)==([^\s#;]+)", line)
        if match:
            pins[normalise(match.group(1))] = match.group(2)
    return pins


def write_atomic(path, text):
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def freeze(in_file):
    with tempfile.TemporaryDirectory() as tmp:
        python = Path(tmp) / "bin" / "python"
        subprocess.run([sys.executable, "-m", "venv", tmp], check=True)
        subprocess.run([python, "-m", "pip", "install", "--quiet", "-r", in_file], check=True)
        out = subprocess.run([python, "-m", "pip", "freeze", "--exclude-editable"], check=True,
                             capture_output=True, text=True).stdout
    # Drop local version tags ("+cpu"): pip then takes whichever build the machine offers.
    return re.sub(r"^(\S+==[^+\s]+)\+\S+$", r"\1", out, flags=re.M)


def update_conda_file(path, in_file, pins):
    text = path.read_text()

    def repin(match):
        name = match.group(2)
        return f"{match.group(1)}{name}=={pins[normalise(name)]}"
    wanted = {normalise(n) for n in requirement_names(in_file)}
    lines = [re.sub(r"^(\s*-\s+)([A-Za-z0-9_.\-]+)==\S+", repin, line)
             if (m := re.match(r"^\s*-\s+([A-Za-z0-9_.\-]+)==", line)) and normalise(m.group(1)) in wanted
             else line
             for line in text.splitlines()]
    write_atomic(path, "\n".join(lines) + "\n")


def lock(env):
    in_file = REPO / "requirements" / f"{env}.in"
    lock_file = REPO / "requirements" / f"{env}.lock"
    header = [line for line in lock_file.read_text().splitlines() if line.startswith("#")] if lock_file.exists() else []
    print(f"resolving {in_file.relative_to(REPO)} ...", flush=True)
    frozen = freeze(in_file)
    write_atomic(lock_file, "\n".join(header) + "\n" + frozen)
    update_conda_file(REPO / ENVIRONMENTS[env], in_file, read_pins(lock_file))
    print(f"wrote {lock_file.relative_to(REPO)} and {ENVIRONMENTS[env]}")


def main(argv=None):
    envs = (argv if argv is not None else sys.argv[1:]) or list(ENVIRONMENTS)
    unknown = set(envs) - set(ENVIRONMENTS)
    if unknown:
        sys.exit(f"error: unknown environment(s) {', '.join(sorted(unknown))}; choose from {', '.join(ENVIRONMENTS)}")
    for env in envs:
        lock(env)


if __name__ == "__main__":
    main()
