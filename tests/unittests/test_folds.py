"""K-fold views of a TAU-layout folder and the folds' pooled comparisons."""

import csv
import json
from pathlib import Path

import pytest

from speechbrain_kd.folds import (
    assign_folds,
    fold_comparisons,
    read_tau_clips,
    write_fold_views,
)
from speechbrain_kd.metrics import write_predictions


def listed(view, name):
    path = Path(view) / "evaluation_setup" / name
    with open(path, newline="") as f:
        return [r["filename"] for r in csv.DictReader(f, delimiter="\t")]


def test_every_clip_is_tested_once_and_no_location_is_split(
    tiny_demo, tmp_path
):
    clips = read_tau_clips(tiny_demo)
    location = {c["filename"]: c["identifier"] for c in clips}
    views = write_fold_views(tiny_demo, tmp_path / "folds", 4, seed=3)
    tested = []
    for view in views:
        test = listed(view, "fold1_evaluate.csv")
        train = listed(view, "fold1_train.csv")
        assert sorted(test + train) == sorted(location)
        assert {location[c] for c in test}.isdisjoint(
            {location[c] for c in train}
        )
        assert (view / "audio").resolve() == (tiny_demo / "audio").resolve()
        assert (view / test[0]).is_file()
        tested += test
    assert sorted(tested) == sorted(location)  # each clip exactly once
    sizes = [len(listed(v, "fold1_evaluate.csv")) for v in views]
    assert max(sizes) - min(sizes) <= 0.25 * len(clips) / 4
    record = json.loads((tmp_path / "folds" / "folds.json").read_text())
    assert record["k"] == 4 and record["seed"] == 3
    for k, view in enumerate(views, start=1):
        assert {Path(c).stem for c in listed(view, "fold1_evaluate.csv")} == {
            c for c, f in record["clips"].items() if f == k
        }


def test_folds_follow_the_seed_only(tiny_demo, tmp_path):
    clips = read_tau_clips(tiny_demo)
    assert assign_folds(clips, 4, seed=3) == assign_folds(clips, 4, seed=3)
    assert assign_folds(clips, 4, seed=3) != assign_folds(clips, 4, seed=4)
    first = write_fold_views(tiny_demo, tmp_path / "a", 3, seed=1)
    again = write_fold_views(tiny_demo, tmp_path / "a", 3, seed=1)
    assert first == again
    other = write_fold_views(tiny_demo, tmp_path / "b", 3, seed=1)
    for a, b in zip(first, other, strict=True):
        for name in ("fold1_train.csv", "fold1_evaluate.csv"):
            assert listed(a, name) == listed(b, name)


def test_a_view_prepares_like_a_data_folder(tiny_demo, tmp_path):
    from dcase2019_prepare import prepare_dcase2019

    (view, *_) = write_fold_views(tiny_demo, tmp_path / "folds", 3)
    out = tmp_path / "manifests"
    counts = prepare_dcase2019(view, out, valid_ratio=0.2)
    manifests = {}
    for split in ("train", "valid", "test"):
        with open(out / f"{split}.csv", newline="") as f:
            manifests[split] = list(csv.DictReader(f))
    assert counts["test"] == len(listed(view, "fold1_evaluate.csv"))
    places = {s: {r["identifier"] for r in m} for s, m in manifests.items()}
    assert places["valid"].isdisjoint(places["train"])  # drawn inside
    assert places["test"].isdisjoint(places["train"] | places["valid"])


def test_impossible_fold_counts_are_named(tiny_demo, tmp_path):
    clips = read_tau_clips(tiny_demo)
    places = len({c["identifier"] for c in clips})
    for k in (1, places + 1, 2.5):
        with pytest.raises(ValueError, match=rf"K must be .* here; got {k}$"):
            assign_folds(clips, k)
    with pytest.raises(FileNotFoundError, match="meta.csv is missing"):
        read_tau_clips(tmp_path)


def fold_run(folder, name, ids, hits):
    probs = [[0.9, 0.1] if hit else [0.1, 0.9] for hit in hits]
    write_predictions(
        folder / name / "test_predictions.csv",
        ids,
        [0] * len(ids),
        probs,
        ["a", "b"],
    )
    return {"output_folder": str(folder / name)}


@pytest.fixture
def fold_summaries(tmp_path):
    """Three folds of 20 clips: the baseline right on 15 of each, the
    reference on 10."""
    ids = {f: [f"c{20 * (f - 1) + k}" for k in range(20)] for f in (1, 2, 3)}
    summaries = {
        f: {
            "reference": fold_run(tmp_path, f"r{f}", ids[f], [1, 0] * 10),
            "baseline": fold_run(tmp_path, f"b{f}", ids[f], [1] * 15 + [0] * 5),
        }
        for f in ids
    }
    folds = tmp_path / "folds.json"
    folds.write_text(json.dumps({"clips": {c: f for f in ids for c in ids[f]}}))
    return summaries, folds, ids


def test_fold_comparisons_pool_every_clip(fold_summaries, tmp_path):
    summaries, folds, ids = fold_summaries
    entry = fold_comparisons(summaries, folds)["baseline_vs_reference"]
    assert entry["n_clips"] == 60 and entry["seeds"] == [1, 2, 3]
    assert entry["difference"] == pytest.approx(100 * (45 - 30) / 60)
    # Seeds and folds combine: each seed's folds test every clip once.
    both = {(s, f): summaries[f] for s in (1, 2) for f in summaries}
    entry = fold_comparisons(both, folds)["baseline_vs_reference"]
    assert entry["n_clips"] == 120
    # A fold's student tested on another fold's clips: refused, with why.
    summaries[2]["student"] = fold_run(tmp_path, "s2", ids[1], [1] * 20)
    summaries[2]["ensemble"] = summaries[2]["baseline"]
    refused = fold_comparisons(summaries, folds)["student_vs_ensemble"]
    assert "were not tested on the same clips" in refused["refused"]


def test_folds_that_miss_or_repeat_clips_are_refused(fold_summaries):
    summaries, folds, _ = fold_summaries
    with pytest.raises(ValueError, match="folds \\[3\\] of .* no summary"):
        fold_comparisons({f: summaries[f] for f in (1, 2)}, folds)
    swapped = {1: summaries[2], 2: summaries[1], 3: summaries[3]}
    with pytest.raises(ValueError, match="fold 1 should test the 20 clips"):
        fold_comparisons(swapped, folds)
    with pytest.raises(ValueError, match="clip c0 is tested in fold 1 and"):
        fold_comparisons({1: summaries[1], 4: summaries[1]})


def test_pooled_accuracy_counts_every_fold_clip(fold_summaries):
    from speechbrain_kd.folds import pooled_accuracy

    summaries, _, _ = fold_summaries
    assert pooled_accuracy(summaries, "baseline") == {
        "accuracy": 45 / 60,
        "n_clips": 60,
        "folds": [1, 2, 3],
    }
    assert pooled_accuracy(summaries, "reference")["accuracy"] == 0.5
    with pytest.raises(ValueError, match="no fold summary has the row"):
        pooled_accuracy(summaries, "student")
