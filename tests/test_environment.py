"""The conda files, lock files and requirement lists describe the same environments."""

import re
from pathlib import Path

import pytest
import yaml

from d2l_tools.lock import ENVIRONMENTS, normalise, read_pins, requirement_names

REPO = Path(__file__).resolve().parents[1]


def conda_pip_entries(path):
    spec = yaml.safe_load(path.read_text())
    pip_sections = [d["pip"] for d in spec["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, f"{path.name} must have exactly one pip section"
    return spec, pip_sections[0]


@pytest.mark.parametrize("env", sorted(ENVIRONMENTS))
def test_conda_file_pins_what_the_lock_pins(env):
    conda_file = REPO / ENVIRONMENTS[env]
    spec, entries = conda_pip_entries(conda_file)
    assert "python=3.11" in spec["dependencies"], f"{conda_file.name} must ask for Python 3.11"
    lock = read_pins(REPO / "requirements" / f"{env}.lock")
    packages = [e for e in entries if not e.startswith("-")]
    assert packages, f"{conda_file.name} lists no packages"
    for entry in packages:
        name, _, version = entry.partition("==")
        assert version, f"{conda_file.name}: {entry!r} is not pinned with =="
        assert lock.get(normalise(name)) == version, (
            f"{conda_file.name} pins {name}=={version} but requirements/{env}.lock has "
            f"{lock.get(normalise(name))}: run `make lock`")
    assert "-e ." in entries, f"{conda_file.name} must install d2l_shim itself (-e .)"


@pytest.mark.parametrize("env", sorted(ENVIRONMENTS))
def test_every_requirement_is_locked_and_in_the_conda_file(env):
    lock = read_pins(REPO / "requirements" / f"{env}.lock")
    _, entries = conda_pip_entries(REPO / ENVIRONMENTS[env])
    in_conda = {normalise(e.partition("==")[0]) for e in entries if not e.startswith("-")}
    for name in requirement_names(REPO / "requirements" / f"{env}.in"):
        assert normalise(name) in lock, f"{name} from requirements/{env}.in is missing from the lock file"
        assert normalise(name) in in_conda, f"{name} from requirements/{env}.in is missing from {ENVIRONMENTS[env]}"


def test_lock_files_pin_every_line():
    for lock_file in (REPO / "requirements").glob("*.lock"):
        for line in lock_file.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                assert re.match(r"^[A-Za-z0-9_.\-]+==[^\s+]+$", line), f"{lock_file.name}: unpinned line {line!r}"


def test_mxnet_environment_keeps_numpy_below_1_24():
    version = read_pins(REPO / "requirements" / "mxnet.lock")["numpy"]
    major, minor = (int(part) for part in version.split(".")[:2])
    assert (major, minor) < (1, 24), "MXNet 1.9.1 does not import on numpy>=1.24"
