"""The TAU 2022 Mobile path end to end: 1-s mono clips from several devices.

A DCASE 2022-2025 task 1 user runs ``pipeline.py --preset=tau2022`` on the
TAU Urban Acoustic Scenes 2022 Mobile development set, on one of the DCASE
2024 data-efficiency subsets. This runs that path (one short epoch per
phase) on a generated folder of that exact layout at 44.1 kHz: devices in
the file names and ``meta.csv``, devices only in the test split, and the
challenge's ``split_setup/split<N>.csv`` files.
"""

import csv
import json

import pytest

from speechbrain_kd.demo_data import TEST_ONLY_DEVICES, TRAIN_DEVICES
from tests.conftest import preset_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mobile_run(tmp_path_factory):
    return preset_run(
        tmp_path_factory.mktemp("tau2022"),
        {
            "clips_per_scene": 24,
            "seconds": 1.0,
            "sample_rate": 44100,
            "channels": 1,
            "layout": "tau2022",
        },
        "--preset=tau2022",
        "--train_subset=50",
        "--number_of_epochs=1",
        "--batch_size=16",
        "--eval_batch_size=16",
    )


def read_rows(path, delimiter=","):
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter=delimiter))


def test_trains_on_the_subset_and_tests_on_every_clip(mobile_run):
    data, out = mobile_run["data"], mobile_run["folder"]
    listed = read_rows(data / "split_setup" / "split50.csv", "\t")
    names = {str((data / r["filename"]).absolute()) for r in listed}
    manifests = out / "manifests"
    used = [
        r["wav"]
        for s in ("train", "valid")
        for r in read_rows(manifests / f"{s}.csv")
    ]
    assert sorted(used) == sorted(names)
    evaluate = read_rows(data / "evaluation_setup" / "fold1_evaluate.csv", "\t")
    results = json.loads((out / "student" / "test_results.json").read_text())
    assert results["n_clips"] == len(evaluate)


def test_accuracy_per_device_matches_the_predictions(mobile_run):
    out, summary = mobile_run["folder"], mobile_run["summary"]
    device_of = {
        r["ID"]: r["device"] for r in read_rows(out / "manifests" / "test.csv")
    }
    for phase in ("baseline", "ensemble", "student"):
        by_device = summary[phase]["accuracy_by"]["device"]
        assert set(by_device) == set(TRAIN_DEVICES + TEST_ONLY_DEVICES)
        hits = {}
        for row in read_rows(out / phase / "test_predictions.csv"):
            hits.setdefault(device_of[row["ID"]], []).append(
                row["target"] == row["prediction"]
            )
        for device, entry in by_device.items():
            assert entry["n_clips"] == len(hits[device])
            assert entry["accuracy"] == pytest.approx(
                sum(hits[device]) / len(hits[device])
            )
    assert "test accuracy per device (%)" in mobile_run["result"].stdout


def test_student_is_the_low_complexity_family_within_the_dcase_limits(
    mobile_run,
):
    out, summary = mobile_run["folder"], mobile_run["summary"]
    spec = json.loads(
        (out / "student" / "save" / "model_spec.json").read_text()
    )
    assert spec["embedding_model"]["config"]["block"] == "inverted_residual"
    assert spec["sample_rate"] == 32000
    cost = summary["student"]["complexity"]
    assert cost["parameters"] <= 128_000
    assert cost["macs"] <= 30_000_000
    assert cost["sample_rate"] == 32000
    assert "student within the limits" in mobile_run["result"].stdout
