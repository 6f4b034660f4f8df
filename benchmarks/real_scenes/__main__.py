"""Command line: ``python benchmarks/real_scenes OUT [options]``, or
``python -m benchmarks.real_scenes OUT [options]`` from the repository
root (see the package's docstring)."""

import argparse
import sys
from pathlib import Path

if not __package__:  # run as a folder: import it as the package it is
    sys.path[0] = str(Path(__file__).resolve().parents[2])

from benchmarks.real_scenes import __doc__ as DESCRIPTION  # noqa: E402
from benchmarks.real_scenes import build  # noqa: E402


def main(argv=None):
    """Build the set from the command line; bad options exit with status 2.

    Example
    -------
    >>> main(["out", "--train_fraction", "1.5"])
    Traceback (most recent call last):
    ...
    SystemExit: 2
    """
    parser = argparse.ArgumentParser(
        description=DESCRIPTION.split("\n\n", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("out", help="output folder (TAU 2019 layout)")
    parser.add_argument(
        "--cache", default=None, help="download cache (default: OUT.cache)"
    )
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--sample_rate", type=int, default=16000)
    parser.add_argument("--max_clips_per_source", type=int, default=20)
    parser.add_argument("--train_fraction", type=float, default=0.7)
    args = parser.parse_args(argv)
    try:
        build(
            args.out,
            args.cache,
            args.seconds,
            args.sample_rate,
            args.max_clips_per_source,
            args.train_fraction,
        )
    except (ValueError, FileExistsError, RuntimeError) as error:
        parser.exit(2, f"error: {error}\n")


if __name__ == "__main__":
    sys.exit(main())
