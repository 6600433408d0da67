"""``HyperParameters`` and ``add_to_class``: d2l's two small class utilities."""

import inspect


def add_to_class(Class):
    """Decorator that attaches a function to ``Class`` as a method (lets a notebook grow a class cell by cell)."""

    def wrapper(obj):
        setattr(Class, obj.__name__, obj)
        return obj

    return wrapper


class HyperParameters:
    """Base class whose ``save_hyperparameters`` stores the caller's ``__init__`` arguments."""

    def save_hyperparameters(self, ignore=()):
        """Save every argument of the calling ``__init__`` as ``self.<name>``, and in ``self.hparams``.

        Names in ``ignore``, ``self`` and names starting with ``_`` are skipped.
        """
        frame = inspect.currentframe().f_back
        try:
            _, _, _, local_vars = inspect.getargvalues(frame)
        finally:
            del frame  # break the frame reference cycle at once
        skip = set(ignore) | {"self"}
        self.hparams = {
            k: v for k, v in local_vars.items() if k not in skip and not k.startswith("_") and k != "__class__"
        }
        for k, v in self.hparams.items():
            setattr(self, k, v)
