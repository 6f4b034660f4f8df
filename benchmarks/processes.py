#!/usr/bin/env python3
"""One process against several: the pipeline's results over seeds, side by side.

    python benchmarks/processes.py --seeds 1,2,3 --nproc 2 --work /tmp/procs

Runs ``pipeline.py --seeds=...`` on a small generated demo set once with
one process per phase and once under ``torchrun --nproc_per_node=N``
(gloo on the CPU), then prints, for every model, the mean and spread over
the seeds of each, the difference of the means, and that difference in
units of its standard error (``sqrt(s1^2/n + s2^2/n)``). Evaluation and the
soft-label cache are exact under several processes (the tests compare
them); training is not (each process takes its own ``batch_size`` clips
per step, BatchNorm sees a process's share), so the tolerance is
statistical: the stated one is that every difference stays within two
standard errors. ``--json`` writes the whole comparison.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "recipes" / "DCASE2019" / "pipeline.py"
# The tests' tiny demo set and schedule (tests/conftest.py): minutes per run.
DEMO = {"clips_per_scene": 24, "seconds": 2.0, "sample_rate": 8000}
OVERRIDES = [
    "--sample_rate=8000",
    "--crop_seconds=1.0",
    "--number_of_epochs=15",
]
TOLERANCE_STANDARD_ERRORS = 2.0


def run_pipelines(data, out, seeds, processes, extra):
    """``pipeline.py --seeds`` with ``processes`` per phase; its table."""
    command = [
        sys.executable,
        str(PIPELINE),
        f"--data_folder={data}",
        f"--output_folder={out}",
        "--preset=demo",
        "--seeds=" + ",".join(map(str, seeds)),
        *OVERRIDES,
        *extra,
    ]
    if processes > 1:
        command += [
            f"--nproc_per_node={processes}",
            "--distributed_backend=gloo",
        ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    start = time.time()
    subprocess.run(command, check=True, env=env)
    table = json.loads((Path(out) / "seeds_summary.json").read_text())
    table["seconds"] = time.time() - start
    return table


def compare(single, several):
    """Per model: both means and spreads, the difference, in standard errors.

    Example
    -------
    >>> a = {"models": {"baseline": {"mean": 0.8, "std": 0.02,
    ...      "values": [0.78, 0.8, 0.82]}}, "specialists": []}
    >>> b = {"models": {"baseline": {"mean": 0.78, "std": 0.02,
    ...      "values": [0.76, 0.78, 0.8]}}, "specialists": []}
    >>> row = compare(a, b)["baseline"]
    >>> round(row["difference"], 3), round(row["standard_errors"], 2)
    (-0.02, -1.22)
    """
    rows = {}
    pairs = [
        (name, single["models"][name], several["models"][name])
        for name in single["models"]
    ]
    for one, two in zip(
        single["specialists"], several["specialists"], strict=False
    ):
        name = f"specialist {one['rank']} pair errors"
        pairs.append((name, one["pair_errors"], two["pair_errors"]))
    for name, one, two in pairs:
        n1, n2 = len(one["values"]), len(two["values"])
        error = (one["std"] ** 2 / n1 + two["std"] ** 2 / n2) ** 0.5
        difference = two["mean"] - one["mean"]
        rows[name] = {
            "one_process": one,
            "several": two,
            "difference": difference,
            "standard_errors": difference / error if error else 0.0,
        }
        rows[name]["within_tolerance"] = (
            abs(rows[name]["standard_errors"]) <= TOLERANCE_STANDARD_ERRORS
        )
    return rows


def main(argv=None):
    """Run both, print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--work", default="results/processes")
    parser.add_argument("--json", default=None)
    args, extra = parser.parse_known_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    work = Path(args.work)
    from speechbrain_kd.demo_data import generate_demo_dataset

    data = work / "data"
    generate_demo_dataset(data, seed=0, **DEMO)
    single = run_pipelines(data, work / "one", seeds, 1, extra)
    several = run_pipelines(
        data, work / f"n{args.nproc}", seeds, args.nproc, extra
    )
    rows = compare(single, several)
    print(
        f"\n{'row':<34} {'1 process':>16} {f'{args.nproc} processes':>16} "
        f"{'diff':>8} {'in SE':>7}"
    )
    for name, row in rows.items():
        scale = 1 if "errors" in name else 100

        def cell(entry, scale=scale):
            return f"{scale * entry['mean']:.1f} ± {scale * entry['std']:.1f}"

        print(
            f"{name:<34} {cell(row['one_process']):>16} "
            f"{cell(row['several']):>16} {scale * row['difference']:>8.1f} "
            f"{row['standard_errors']:>7.2f}"
        )
    within = all(row["within_tolerance"] for row in rows.values())
    print(
        f"\nevery difference within {TOLERANCE_STANDARD_ERRORS} standard "
        f"errors: {within}; wall time {single['seconds']:.0f} s (1 process)"
        f", {several['seconds']:.0f} s ({args.nproc} processes)"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "seeds": seeds,
                    "processes": args.nproc,
                    "rows": rows,
                    "seconds": {
                        "one": single["seconds"],
                        "several": several["seconds"],
                    },
                },
                indent=2,
            )
        )
    return rows


if __name__ == "__main__":
    main()
