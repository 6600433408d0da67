"""The requirement lists, lock files and conda files describe the same environments."""

import importlib.metadata
import sys

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from d2l_tools.lock import (
    ENVIRONMENTS,
    REPO,
    REQUIREMENTS,
    conda_python,
    environment_pins,
    in_file_lines,
    normalise,
    read_lock,
    read_pins,
    requirement_names,
)

ENV_NAMES = sorted(ENVIRONMENTS)


def conda_pip_entries(path):
    spec = yaml.safe_load(path.read_text())
    pip_sections = [d["pip"] for d in spec["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, f"{path.name} must have exactly one pip section"
    return pip_sections[0]


@pytest.mark.parametrize("env", ENV_NAMES)
def test_conda_file_pins_what_the_lock_pins(env):
    environment = ENVIRONMENTS[env]
    conda_file = REPO / environment.conda_file
    python = conda_python(conda_file)
    assert python in environment.pythons, f"{conda_file.name} asks for Python {python}, outside {environment.pythons}"
    locked = environment_pins(environment, python)
    entries = conda_pip_entries(conda_file)
    packages = [e for e in entries if not e.startswith("-")]
    assert packages, f"{conda_file.name} lists no packages"
    for entry in packages:
        name, _, version = entry.partition("==")
        assert version, f"{conda_file.name}: {entry!r} is not pinned with =="
        assert locked.get(normalise(name)) == version, (
            f"{conda_file.name} pins {name}=={version} but the lock has {locked.get(normalise(name))} "
            f"for Python {python}: run `make lock`"
        )
    assert "-e ." in entries, f"{conda_file.name} must install d2l_shim itself (-e .)"


@pytest.mark.parametrize("env", ENV_NAMES)
def test_every_requirement_is_locked_for_every_supported_python(env):
    environment = ENVIRONMENTS[env]
    in_conda = {
        normalise(e.partition("==")[0])
        for e in conda_pip_entries(REPO / environment.conda_file)
        if not e.startswith("-")
    }
    for python in environment.pythons:
        locked = environment_pins(environment, python)
        for text, _ in in_file_lines(environment.in_file):
            requirement = Requirement(text)
            version = locked.get(normalise(requirement.name))
            assert version, f"{requirement.name} from {environment.in_file.name} is not locked for Python {python}"
            assert requirement.specifier.contains(version, prereleases=True), (
                f"{environment.lock_file.name} pins {requirement.name}=={version}, outside {text!r}"
            )
            assert normalise(requirement.name) in in_conda, (
                f"{requirement.name} from {environment.in_file.name} is missing from {environment.conda_file}"
            )


@pytest.mark.parametrize("env", ENV_NAMES)
def test_lock_pins_every_package_exactly_with_hashes(env):
    pins = read_lock(ENVIRONMENTS[env].lock_file)  # raises on any entry that is not name==version
    assert len(pins) > 5
    for pin in pins:
        assert pin.hashes, f"{pin.name}=={pin.version} has no --hash: pip's --require-hashes would refuse it"
        assert all(h.startswith("sha256:") for h in pin.hashes), pin
        assert "+" not in pin.version, f"{pin.name}=={pin.version}: a local build tag ties the lock to one machine"


@pytest.mark.parametrize("env", ENV_NAMES)
def test_one_version_of_each_package_for_every_python(env):
    """The locks are resolved with uv's "fewest" fork strategy so that every supported Python
    gets the same versions (stored notebook outputs must not depend on the reader's Python)."""
    versions = {}
    for pin in read_lock(ENVIRONMENTS[env].lock_file):
        versions.setdefault(pin.name, set()).add(pin.version)
    split = {name: sorted(v) for name, v in versions.items() if len(v) > 1}
    assert not split, f"{ENVIRONMENTS[env].lock_file.name} pins several versions: {split}"


@pytest.mark.parametrize("env", ENV_NAMES)
def test_the_lock_keeps_the_reasons_given_in_the_in_file(env):
    environment = ENVIRONMENTS[env]
    lines = environment.lock_file.read_text().splitlines()
    explained = [(text, comment) for text, comment in in_file_lines(environment.in_file) if comment]
    assert explained, f"{environment.in_file.name} explains none of its pins"
    for text, comment in explained:
        name = normalise(Requirement(text).name)
        pin_line = next((i for i, line in enumerate(lines) if normalise(line.split("==")[0]) == name), None)
        assert pin_line is not None, f"{environment.lock_file.name} does not pin {text}"
        assert lines[pin_line - 1] == f"# {text}: {comment}", (
            f"{environment.lock_file.name}: the reason for {text} is not above its pin: run `make lock`"
        )


def test_mxnet_environment_keeps_numpy_below_1_24():
    numpy_pins = [pin for pin in read_lock(ENVIRONMENTS["mxnet"].lock_file) if pin.name == "numpy"]
    assert numpy_pins, "mxnet.lock pins no numpy"
    for pin in numpy_pins:
        assert Version(pin.version) < Version("1.24"), "MXNet 1.9.1 does not import on numpy>=1.24"


def test_torch_is_pinned_apart_without_hashes_or_build_tag():
    main = ENVIRONMENTS["main"]
    apart = read_lock(REQUIREMENTS / main.apart)
    assert [pin.name for pin in apart] == ["torch"]
    torch = apart[0]
    assert "+" not in torch.version and not torch.hashes
    assert all(pin.name != "torch" for pin in read_lock(main.lock_file)), (
        "torch in main.lock would pull its CUDA build's hashes into --require-hashes: see torch.txt"
    )
    assert requirement_names(REQUIREMENTS / main.apart) == ["torch"]


def test_the_installed_torchs_own_dependencies_are_locked():
    """torch is installed without hashes (torch.txt); what it depends on must still be locked."""
    main = ENVIRONMENTS["main"]
    torch_pin = read_pins(REQUIREMENTS / main.apart, "3.11")["torch"]
    installed = Version(importlib.metadata.version("torch"))
    assert installed.public == torch_pin, f"installed torch {installed} is not torch.txt's {torch_pin}"
    python = "{}.{}".format(*sys.version_info[:2])
    locked = read_pins(main.lock_file, python)
    # Unconditional ones: the CUDA build's extra libraries (marked platform_system == "Linux")
    # are pip's to fetch with that build, and extras are not installed.
    portable = [Requirement(r) for r in importlib.metadata.requires("torch")]
    portable = [r for r in portable if r.marker is None]
    assert portable, "torch declares no dependencies"
    for requirement in portable:
        version = locked.get(normalise(requirement.name))
        assert version, f"torch needs {requirement}, which requirements/main.in does not lock"
        assert requirement.specifier.contains(version), f"torch needs {requirement}, main.lock has {version}"


@pytest.mark.parametrize("lock", sorted(REQUIREMENTS.glob("*.lock")), ids=lambda path: path.name)
def test_every_hash_belongs_to_a_requirement(lock):
    # A --hash line cut off from its requirement (a comment wedged into a continued entry) is
    # ignored by pip, which then sees fewer hashes, may pick a source build and fail.
    continued, orphans = False, []
    for number, line in enumerate(lock.read_text().splitlines(), start=1):
        if line.strip().startswith("--hash") and not continued:
            orphans.append(number)
        continued = line.rstrip().endswith("\\")
    assert not orphans, f"{lock.name}: --hash lines with no requirement at lines {orphans}: run `make lock`"
