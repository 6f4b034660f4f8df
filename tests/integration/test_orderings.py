"""The paper's orderings over seeds, on the default demo set and preset.

Jung et al. (IEEE Access 2020): the ensemble of the baseline and the
specialists beats the baseline, each specialist cuts the errors inside its
pair, and the student distilled from all of them beats the ensemble. This
runs the README's main job once per seed (``pipeline.py --seeds=1,2,3``)
and asserts each ordering in every seed, and on the mean by at least
``MARGIN`` (two test clips of the demo's 200).

About 8 minutes a seed on 2 CPU cores, beyond CI's budget: it runs with
``pytest -m orderings --orderings``; ``--orderings_folder=DIR`` keeps the
runs there, and a second call reuses the finished phases.
"""

import json
import statistics
from pathlib import Path

import pytest
import torch

from tests.conftest import RECIPE, run_script

pytestmark = [pytest.mark.slow, pytest.mark.orderings]

SEEDS = (1, 2, 3)
MARGIN = 0.01


@pytest.fixture(scope="module")
def seed_runs(request, tmp_path_factory):
    """``seeds_summary.json`` and each seed's ``summary.json``."""
    folder = request.config.getoption("--orderings_folder")
    out = (
        Path(folder).resolve()
        if folder
        else tmp_path_factory.mktemp("orderings") / "pipeline"
    )
    seeds = ",".join(map(str, SEEDS))
    run_script(
        [RECIPE / "pipeline.py", f"--output_folder={out}", f"--seeds={seeds}"],
        # torch's own thread count, as the README's main job runs.
        env={"OMP_NUM_THREADS": str(torch.get_num_threads())},
    )
    table = json.loads((out / "seeds_summary.json").read_text())
    runs = [
        json.loads((out / f"seed_{seed}" / "summary.json").read_text())
        for seed in SEEDS
    ]
    return table, runs


def gaps(runs, better, worse):
    return [r[better]["accuracy"] - r[worse]["accuracy"] for r in runs]


@pytest.mark.parametrize(
    "better, worse", [("ensemble", "baseline"), ("student", "ensemble")]
)
def test_ordering_holds_in_every_seed_with_margin(seed_runs, better, worse):
    table, runs = seed_runs
    differences = gaps(runs, better, worse)
    assert all(d >= 0 for d in differences), (better, worse, differences)
    assert statistics.fmean(differences) >= MARGIN, (better, differences)
    claim = f"{better} >= {worse}"
    assert table["orderings"][claim] == len(SEEDS)
    # The paired comparison pools the same clips: its difference is the
    # mean gap (every seed tests every clip once).
    paired = table["comparisons"][f"{better}_vs_{worse}"]
    assert paired["seeds"] == list(SEEDS)
    assert paired["difference"] == pytest.approx(
        100 * statistics.fmean(differences)
    )


def test_every_specialist_cuts_its_pair_errors_in_every_seed(seed_runs):
    table, runs = seed_runs
    for seed, run in zip(SEEDS, runs, strict=True):
        assert len(run["specialists"]) == 2, seed
        for spec in run["specialists"]:
            assert spec["pair_errors"] < spec["baseline_pair_errors"], (
                seed,
                spec,
            )
    assert table["orderings"]["every specialist cuts its pair errors"] == len(
        SEEDS
    )
    for rank in (1, 2):
        paired = table["comparisons"][
            f"specialist_{rank}_vs_baseline_pair_errors"
        ]
        specs = [run["specialists"][rank - 1] for run in runs]
        assert paired["errors"] == [
            sum(s["pair_errors"] for s in specs),
            sum(s["baseline_pair_errors"] for s in specs),
        ]
        assert paired["difference"] > 0
