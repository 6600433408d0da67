"""The maintainers' tooling for the chapter: ``python -m d2l_tools COMMAND`` (see ``__main__``)."""

import argparse

from d2l_shim import FRAMEWORKS


def parse_frameworks(text, allowed=FRAMEWORKS):
    """The frameworks of a comma list (``--frameworks``, ``FRAMEWORKS=``), in the book's order.

    An empty list means all of ``allowed``; an unknown name raises ValueError saying what to use.
    """
    names = [name.strip().lower() for name in (text or "").split(",") if name.strip()]
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise ValueError(f"unknown framework(s) {', '.join(unknown)}: use a comma list of {', '.join(allowed)}")
    return tuple(fw for fw in allowed if fw in names) or tuple(allowed)


def add_frameworks_option(parser, allowed=FRAMEWORKS, default=""):
    """``--frameworks A,B``, parsed by ``parse_frameworks`` into a tuple; a bad name is a usage error."""

    def frameworks(text):
        try:
            return parse_frameworks(text, allowed)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    parser.add_argument(
        "--frameworks",
        type=frameworks,
        default=default,
        metavar="A,B",
        help=f"comma list of {', '.join(allowed)} (default: all)",
    )
