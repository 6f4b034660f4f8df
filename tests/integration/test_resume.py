"""A phase killed with SIGKILL and rerun ends as if never interrupted.

The killed run is ``train.py`` itself, started through a wrapper that
sends SIGKILL to its own process when the Brain reaches a given training
step (no clean-up, no exception handler runs: what a preemption does).
"""

import json

import pytest

from tests.conftest import run_script
from tests.integration.test_train_phase import baseline_args

pytestmark = pytest.mark.slow

KILL_AT_STEP = r"""
import os, runpy, signal, sys
import speechbrain_kd.brain as brain
step, limit = 0, int(sys.argv[1])
fit_batch = brain.SceneClassificationBrain.fit_batch
def counted(self, batch):
    global step
    step += 1
    if step > limit:
        os.kill(os.getpid(), signal.SIGKILL)
    return fit_batch(self, batch)
brain.SceneClassificationBrain.fit_batch = counted
sys.argv = sys.argv[2:]
sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[0])))
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def outcome(folder):
    """What a run ends with: its log of losses, metrics and predictions."""
    results = json.loads((folder / "test_results.json").read_text())
    results.pop("checkpoint", None)  # the folder name holds a time stamp
    return {
        "log": (folder / "train_log.txt").read_text(),
        "results": results,
        "predictions": (folder / "test_predictions.csv").read_text(),
    }


@pytest.fixture(scope="module")
def uninterrupted(tiny_demo, tmp_path_factory):
    """The uninterrupted run's outcome, per loader worker count."""
    runs = {}

    def outcome_with(workers):
        if workers not in runs:
            folder = tmp_path_factory.mktemp("resume") / "whole"
            args = baseline_args(tiny_demo, folder, 3)
            run_script([*args, *RESUME_ARGS, f"--num_workers={workers}"])
            runs[workers] = outcome(folder)
        return runs[workers]

    return outcome_with


# Mixup from epoch 2, so that its draws are part of what must match; an
# intra-epoch checkpoint every 2 steps (SpeechBrain's ckpt_interval_steps).
RESUME_ARGS = ["--mixup_start_epoch=2", "--ckpt_interval_steps=2"]


@pytest.mark.parametrize(
    "killed_after, workers",
    [
        pytest.param(11, 0, id="mid-epoch-2"),  # 9 steps per epoch
        pytest.param(18, 0, id="end-of-epoch-2"),
        pytest.param(3, 0, id="mid-epoch-1"),
        # A clip's crop is a function of the seed, epoch and clip, not of
        # the worker that loads it (nor of the batches it loaded before).
        pytest.param(18, 2, id="end-of-epoch-2-two-workers"),
        pytest.param(13, 2, id="mid-epoch-2-two-workers"),
    ],
)
def test_killed_run_resumes_bit_identical(
    tiny_demo, tmp_path, uninterrupted, killed_after, workers
):
    folder = tmp_path / "killed"
    args = [
        *baseline_args(tiny_demo, folder, 3),
        *RESUME_ARGS,
        f"--num_workers={workers}",
    ]
    killed = run_script(["-c", KILL_AT_STEP, killed_after, *args], check=False)
    assert killed.returncode == -9, killed.stdout[-2000:]
    assert not (folder / "test_results.json").exists()
    run_script(args)
    resumed, whole = outcome(folder), uninterrupted(workers)
    assert resumed["results"] == whole["results"]
    assert resumed["predictions"] == whole["predictions"]
    # Every epoch logged once, with the same losses to the last digit.
    assert resumed["log"] == whole["log"]


def test_loader_workers_do_not_change_the_run(uninterrupted):
    # Two workers load the batches in another order of processes, with
    # their own torch seeds: what is drawn per clip must not depend on it.
    assert uninterrupted(2) == uninterrupted(0)
