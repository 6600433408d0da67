"""The project's two Python environments: which frameworks each holds, where, and its lock files.

MXNet 1.9.1 needs numpy < 1.24 and so a Python of 3.11 or older: it lives in ``.venv-mxnet``;
PyTorch, TensorFlow, JAX, Jupyter and the book tools share ``.venv``.
"""

from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO / "requirements"


@dataclass(frozen=True)
class Environment:
    name: str
    venv: str
    frameworks: tuple  # the frameworks whose kernels run in it
    pythons: tuple  # the Python versions the lock must install on, oldest first
    conda_file: str
    apart: str | None = None  # a requirements file installed by itself, without hashes

    @property
    def in_file(self):
        return REQUIREMENTS / f"{self.name}.in"

    @property
    def lock_file(self):
        return REQUIREMENTS / f"{self.name}.lock"

    @property
    def lock_files(self):
        """Every file that pins what the environment installs."""
        return (self.lock_file,) + ((REQUIREMENTS / self.apart,) if self.apart else ())

    @property
    def python(self):
        return REPO / self.venv / "bin" / "python"


ENVIRONMENTS = {
    "main": Environment(
        "main",
        ".venv",
        ("pytorch", "tensorflow", "jax"),
        ("3.11", "3.12", "3.13"),
        "environment.yml",
        apart="torch.txt",
    ),
    "mxnet": Environment("mxnet", ".venv-mxnet", ("mxnet",), ("3.10", "3.11"), "environment-mxnet.yml"),
}


def environment_of(framework):
    """The Environment whose Python runs ``framework``."""
    for env in ENVIRONMENTS.values():
        if framework in env.frameworks:
            return env
    raise KeyError(f"no environment holds {framework!r}")
