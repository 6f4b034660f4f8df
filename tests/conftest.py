"""Shared fixtures: a tiny demo dataset and one run of the whole pipeline."""

import json
import os
import subprocess
import sys
from pathlib import Path

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
        *TINY_OVERRIDES,
        *extra,
    ]


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
    result = run_script(pipeline_args(tiny_demo, out))
    summary = json.loads((out / "summary.json").read_text())
    return {"folder": out, "summary": summary, "stdout": result.stdout}
