"""The text of a notebook output, and the one pattern for terminal colour codes.

Used by the book (what a reader sees), the output comparison and the notebook checks.
"""

import re

# A CSI escape sequence: colours and cursor moves that IPython tracebacks and progress bars
# print ("\x1b[31m", "\x1b[?25l"); the book and the comparisons drop them.
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def output_text(value):
    """A notebook text field as one string: nbformat may store it as a list of lines."""
    return "".join(value) if isinstance(value, list) else value


def strip_ansi(text):
    """``text`` without terminal escape sequences."""
    return ANSI_ESCAPE.sub("", text)
