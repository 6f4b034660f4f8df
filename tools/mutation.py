#!/usr/bin/env python3
"""Mutation score of the core modules with mutmut 3 (too slow for CI).

    pip install mutmut
    python tools/mutation.py                    # every core module
    python tools/mutation.py losses samplers    # some of them
    python tools/mutation.py --json scores.json

For each module, a clean copy of the last commit (``git archive HEAD``) is
made in ``--work``, mutmut mutates that module only and runs the fast
tests that cover it (``CORE_MODULES``: the unit tests named after it and
its doctests), then the killed / survived / other counts and the score
(killed over all mutants that ran) are printed, and ``mutmut results``
lists the survivors, which a closing note must either kill with a test
or explain (an equivalent mutant).
"""

import argparse
import io
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Module -> the fast tests that cover it (besides its own doctests).
CORE_MODULES = {
    "losses": ["tests/unittests/test_losses.py"],
    "teachers": ["tests/unittests/test_teachers.py"],
    "teacher_sources": [
        "tests/unittests/test_teachers.py",
        "tests/unittests/test_teacher_sources.py",
    ],
    "soft_labels": ["tests/unittests/test_soft_labels.py"],
    "soft_label_cache": ["tests/unittests/test_soft_labels.py"],
    "samplers": [
        "tests/unittests/test_samplers.py",
        "tests/unittests/test_specialist_step.py",
    ],
    "metrics": ["tests/unittests/test_metrics.py"],
    "comparisons": ["tests/unittests/test_comparisons.py"],
    "pairs": ["tests/unittests/test_pairs.py"],
    "dataio": ["tests/unittests/test_dataio.py"],
    "audio": ["tests/unittests/test_dataio.py"],
    "manifests": ["tests/unittests/test_dataio.py"],
    "brain": [
        "tests/unittests/test_brain.py",
        "tests/unittests/test_brain_results.py",
    ],
    "reference": ["tests/unittests/test_reference.py"],
}


def copy_of_head(folder):
    """The files of the last commit in ``folder`` (no work tree changes)."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", "HEAD"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")


def mutmut_config(module, tests):
    """The ``[mutmut]`` section of ``setup.cfg`` for one module."""
    selection = "\n    ".join([*tests, f"speechbrain_kd/{module}.py"])
    return (
        "[mutmut]\n"
        "source_paths = speechbrain_kd\n"
        f"only_mutate = speechbrain_kd/{module}.py\n"
        "pytest_add_cli_args_test_selection =\n"
        f"    {selection}\n"
        "pytest_add_cli_args =\n"
        "    -p\n    no:cacheprovider\n    -m\n    not slow\n"
    )


def count_results(text):
    """Mutant counts by status from ``mutmut results --all true``.

    Example
    -------
    >>> text = "  a.f__mutmut_1: killed\\n  a.f__mutmut_2: survived\\n"
    >>> count_results(text)
    {'killed': 1, 'survived': 1}
    """
    counts = {}
    for status in re.findall(r"__mutmut_\d+: ([\w ]+)$", text, re.MULTILINE):
        counts[status.strip()] = counts.get(status.strip(), 0) + 1
    return counts


def score_module(module, tests, work):
    """Run mutmut on one module; return its counts, score and survivors."""
    folder = Path(work) / module
    if folder.exists():
        subprocess.run(["rm", "-rf", str(folder)], check=True)
    folder.mkdir(parents=True)
    copy_of_head(folder)
    (folder / "setup.cfg").write_text(mutmut_config(module, tests))
    # mutmut forks each mutant's test run from a process that has run the
    # tests once: torch's OpenMP threads do not survive a fork (the children
    # hang), so every library gets one thread.
    single_thread = dict.fromkeys(
        ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"), "1"
    )
    subprocess.run(
        [sys.executable, "-m", "mutmut", "run", "--max-children", "2"],
        cwd=folder,
        env=os.environ | single_thread,
        check=False,
    )
    listing = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    counts = count_results(listing)
    ran = sum(counts.get(s, 0) for s in ("killed", "survived", "timeout"))
    killed = counts.get("killed", 0) + counts.get("timeout", 0)
    survivors = re.findall(r"(\S+__mutmut_\d+): survived", listing)
    return {
        "counts": counts,
        "score": killed / ran if ran else None,
        "survivors": survivors,
    }


def main(argv=None):
    """Score the modules asked for, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", default=list(CORE_MODULES))
    parser.add_argument("--work", default="/tmp/mutation")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    unknown = sorted(set(args.modules) - set(CORE_MODULES))
    if unknown:
        parser.error(f"unknown modules {unknown}; known: {list(CORE_MODULES)}")
    scores = {}
    for module in args.modules:
        scores[module] = score_module(module, CORE_MODULES[module], args.work)
    print(f"\n{'module':<14} {'killed':>7} {'survived':>9} {'score':>7}")
    for module, result in scores.items():
        counts, score = result["counts"], result["score"]
        shown = "n/a" if score is None else f"{100 * score:.1f}%"
        print(
            f"{module:<14} {counts.get('killed', 0):>7} "
            f"{counts.get('survived', 0):>9} {shown:>7}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(scores, indent=2))
    return scores


if __name__ == "__main__":
    main()
