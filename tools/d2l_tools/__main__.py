"""The maintainers' tooling, one entry point: ``python -m d2l_tools COMMAND [ARGS]`` (or ``d2l-tools``).

Each command is a module of this package with its own ``--help``.
"""

import importlib
import sys

COMMANDS = {
    "split": ("split", "write one notebook per framework, the reader's editions, under build/notebooks/ (make split)"),
    "notebooks": ("notebooks", "execute + merge, check the tabbed notebooks; run nbval"),
    "book": ("book", "build the HTML book"),
    "kernels": ("kernels", "register the four d2l Jupyter kernels"),
    "lab": ("lab", "write the reader's per-framework folders under lab/ and start JupyterLab (make lab)"),
    "data": ("fetch", "fetch, inspect or verify the Fashion-MNIST cache"),
    "citations": ("citations", "check the notebooks' citations and section links; --write renews References"),
    "lock": ("lock", "re-resolve requirements/*.in into lock and conda files"),
    "test": ("testrun", "run every check and print one summary (make test)"),
    "gpu-check": ("gpu_check", "run the PyTorch and JAX training notebooks on a CUDA GPU (make gpu-check)"),
}


def usage():
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    return "usage: python -m d2l_tools COMMAND [ARGS]\n\ncommands:\n" + "\n".join(lines) + "\n"


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), end="")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}\n\n{usage()}", end="", file=sys.stderr)
        return 2
    module = importlib.import_module(f"d2l_tools.{COMMANDS[name][0]}")
    sys.argv[0] = f"python -m d2l_tools {name}"
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
