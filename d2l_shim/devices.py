"""d2l's device discovery, written once for every framework.

A framework module supplies its ``cpu()``, its ``gpu(i)`` and how many GPUs it sees; a
``Devices`` built from them answers ``num_gpus``, ``try_gpu``, ``try_all_gpus`` (the
functions the book calls) and the GPUs a ``Trainer(num_gpus=n)`` trains on.
"""


class Devices:
    """d2l's device helpers for one framework, from its ``cpu()``, ``gpu(i)`` and GPU count."""

    def __init__(self, cpu, gpu, count_gpus):
        self._cpu = cpu
        self._gpu = gpu
        self._count_gpus = count_gpus

    def num_gpus(self):
        """How many GPUs the framework can use."""
        return self._count_gpus()

    def try_gpu(self, i=0):
        """GPU ``i`` if it exists, else the CPU."""
        return self._gpu(i) if self.num_gpus() >= i + 1 else self._cpu()

    def try_all_gpus(self):
        """Every GPU, or ``[cpu()]`` when there is none."""
        return [self._gpu(i) for i in range(self.num_gpus())] or [self._cpu()]

    def first_gpus(self, n):
        """The first ``n`` GPUs, fewer when fewer exist (none: train on the CPU)."""
        return [self._gpu(i) for i in range(min(n, self.num_gpus()))]
