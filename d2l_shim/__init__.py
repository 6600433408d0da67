"""Helpers for the multi-framework MLP chapter.

Import the module of your framework under the name the book uses::

    from d2l_shim import torch as d2l      # or mxnet, tensorflow, jax

Importing ``d2l_shim`` itself loads no deep-learning framework.

This module is the one home of the framework facts that everything else reads: the names in
the book's order, their labels, the ``d2l_shim`` module and the package each one imports.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Framework:
    name: str  # what `%%tab` lines, kernels (d2l-<name>) and the book's tabs call it
    label: str  # how prose and the book's tabs write it
    module: str  # the d2l_shim module a notebook imports: d2l_shim.<module>
    package: str  # the framework's own top-level import

    @property
    def shim_module(self):
        """The full name of the module a notebook imports, e.g. ``d2l_shim.torch``."""
        return f"d2l_shim.{self.module}"


_ALL = (
    Framework("pytorch", "PyTorch", "torch", "torch"),
    Framework("mxnet", "MXNet", "mxnet", "mxnet"),
    Framework("tensorflow", "TensorFlow", "tensorflow", "tensorflow"),
    Framework("jax", "JAX", "jax", "jax"),
)
FRAMEWORK_INFO = {fw.name: fw for fw in _ALL}
FRAMEWORKS = tuple(FRAMEWORK_INFO)  # the book's order: tabs, tables and runs follow it

__version__ = "0.1.0"
