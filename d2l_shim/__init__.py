"""Helpers for the multi-framework MLP chapter.

Import the module of your framework under the name the book uses::

    from d2l_shim import torch as d2l      # or mxnet, tensorflow, jax

Importing ``d2l_shim`` itself loads no deep-learning framework.
"""

FRAMEWORKS = ("pytorch", "mxnet", "tensorflow", "jax")

__version__ = "0.1.0"
