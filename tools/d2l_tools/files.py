"""Writing files so that a reader never sees half of one: a temporary file, then a rename."""

import os
import tempfile
from pathlib import Path


def write_atomic(path, data, mode=0o644):
    """Write ``data`` (str: UTF-8 with "\\n" line ends, or bytes) to ``path`` in one step.

    The temporary file sits next to ``path`` (same file system, so the rename is atomic) and
    is removed if anything fails, interrupts included. Parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.chmod(tmp, mode)  # mkstemp makes it private
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
