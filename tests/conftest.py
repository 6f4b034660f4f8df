"""Shared fixtures: a tiny demo dataset and one run of the whole pipeline."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "DCASE2019"

# Small enough for CI on 2 CPU cores, large enough to learn the scenes.
TINY_DEMO = {"clips_per_scene": 24, "seconds": 2.0, "sample_rate": 8000}
TINY_OVERRIDES = [
    "--sample_rate=8000",
    "--crop_seconds=1.0",
    "--number_of_epochs=15",
]


# A wrapper around a recipe script (``python -c RECORD_TRAINING_BATCHES
# RECORD script args...``) that writes the clip IDs of every batch the
# Brain's training loop receives to ``RECORD.<rank>.json`` (rank 0 without
# torchrun), even when the script fails.
RECORD_TRAINING_BATCHES = """
import json, os, runpy, sys
import speechbrain_kd.brain as brain
batches, fit_batch = [], brain.SceneClassificationBrain.fit_batch
def recorded(self, batch):
    batches.append(list(batch.id))
    return fit_batch(self, batch)
brain.SceneClassificationBrain.fit_batch = recorded
record, sys.argv = sys.argv[1], sys.argv[2:]
sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[0])))
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    with open(f"{record}.{os.environ.get('RANK', '0')}.json", "w") as f:
        json.dump(batches, f)
"""


def pytest_addoption(parser):
    """``--orderings``: also run the paper's orderings over seeds."""
    group = parser.getgroup("speechbrain-kd")
    group.addoption(
        "--orderings",
        action="store_true",
        help="run the paper's claims over five seeds of the default "
        "demo pipeline (about 40 min on 2 CPU cores)",
    )
    group.addoption(
        "--orderings_folder",
        default=None,
        help="where those runs go (kept; finished phases are reused)",
    )


def pytest_collection_modifyitems(config, items):
    """Skip the ``orderings`` tests unless ``--orderings`` is given."""
    if config.getoption("--orderings"):
        return
    skip = pytest.mark.skip(
        reason="five seeds of the demo pipeline: run with --orderings"
    )
    for item in items:
        if "orderings" in item.keywords:
            item.add_marker(skip)


def random_predictions(seed, n=200, n_classes=4):
    """Targets, and predictions equal to them 60 % of the time, else random."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, n_classes, n)
    noise = rng.integers(0, n_classes, n)
    predictions = np.where(rng.random(n) < 0.6, targets, noise)
    return targets, predictions


def run_script(args, env=None, check=True):
    """Run a recipe script the way a user would, one thread per process."""
    full_env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    full_env.update(env or {})
    result = subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=RECIPE,
        env=full_env,
        capture_output=True,
        text=True,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{args} failed ({result.returncode}):\n{result.stdout[-4000:]}"
            f"\n{result.stderr[-4000:]}"
        )
    return result


def pipeline_args(data_folder, output_folder, *extra):
    """The command line of the whole pipeline on the tiny demo set."""
    return [
        RECIPE / "pipeline.py",
        f"--data_folder={data_folder}",
        f"--output_folder={output_folder}",
        "--preset=demo",
        # The controls cost two more student trainings: pipeline_run has them.
        "--controls=False",
        *TINY_OVERRIDES,
        *extra,
    ]


def preset_run(root, demo, *options):
    """A demo set of ``demo`` options and one pipeline run on it, on the CPU.

    ``options`` are the pipeline's (the preset first); the run uses two
    threads. Returns ``{"data", "folder", "summary", "result"}``.
    """
    from speechbrain_kd.demo_data import generate_demo_dataset

    data = generate_demo_dataset(root / "data", **demo)
    out = root / "out"
    result = run_script(
        [
            RECIPE / "pipeline.py",
            f"--data_folder={data}",
            f"--output_folder={out}",
            *options,
            "--device=cpu",
        ],
        env={"OMP_NUM_THREADS": "2"},
    )
    summary = json.loads((out / "summary.json").read_text())
    return {"data": data, "folder": out, "summary": summary, "result": result}


def relabelled_copy(source, target, names):
    """A TAU-layout copy of ``source`` with only some scenes, renamed.

    ``names`` maps a scene of ``source`` to its new name; the wav files are
    linked, and renamed like TAU files (``<scene>-<city>-...``).
    """
    target = Path(target)
    (target / "audio").mkdir(parents=True)
    (target / "evaluation_setup").mkdir()

    def rename(filename):
        scene, _, rest = Path(filename).name.partition("-")
        return f"audio/{names[scene]}-{rest}"

    def keep(filename):
        return Path(filename).name.partition("-")[0] in names

    for rel in [
        "meta.csv",
        *(
            f"evaluation_setup/fold1_{s}.csv"
            for s in ("train", "evaluate", "test")
        ),
    ]:
        lines = (Path(source) / rel).read_text().splitlines()
        out = [lines[0]]
        for line in lines[1:]:
            fields = line.split("\t")
            if not keep(fields[0]):
                continue
            old = fields[0]
            fields[0] = rename(old)
            if len(fields) > 1:
                fields[1] = names[fields[1]]
            out.append("\t".join(fields))
            if rel == "meta.csv":
                os.link(Path(source) / old, target / fields[0])
        (target / rel).write_text("\n".join(out) + "\n")
    return target


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory):
    """A tiny synthetic TAU-layout dataset (generated once per session)."""
    from speechbrain_kd.demo_data import generate_demo_dataset

    folder = tmp_path_factory.mktemp("demo") / "data"
    generate_demo_dataset(folder, seed=0, **TINY_DEMO)
    return folder


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory, tiny_demo):
    """The whole pipeline on the tiny demo set with the demo preset."""
    out = tmp_path_factory.mktemp("pipeline") / "out"
    result = run_script(pipeline_args(tiny_demo, out, "--controls=True"))
    summary = json.loads((out / "summary.json").read_text())
    return {"folder": out, "summary": summary, "stdout": result.stdout}
