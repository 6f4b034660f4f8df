"""Pairs worth a specialist: the error floor, the ranking's clips, k-fold
pooling and a specialist's accuracy outside its pair."""

import json

import numpy as np
import pytest

from speechbrain_kd.metrics import confusion_matrix
from speechbrain_kd.pairs import (
    accuracy_outside_pair,
    pool_confusion,
    rank_confusing_pairs,
    read_confusing_pairs,
)
from tests.conftest import random_predictions

LABELS = ["airport", "metro", "park", "tram"]
# metro/tram 3 + 2 = 5, airport/park 2 + 2 = 4, airport/metro 1.
VALID = np.array([[6, 1, 2, 0], [0, 5, 0, 3], [2, 0, 7, 0], [0, 2, 0, 8]])


def write_results(path, matrix, labels=LABELS):
    path.write_text(
        json.dumps({"labels": labels, "confusion_matrix": matrix.tolist()})
    )
    return path


def test_the_floor_keeps_pairs_with_as_many_errors():
    def ranked(floor):
        ranking = rank_confusing_pairs(VALID, LABELS, min_pair_errors=floor)
        return [(p["pair"], p["count"]) for p in ranking]

    everything = ranked(0)
    assert (
        everything
        == ranked(1)
        == [
            (["metro", "tram"], 5),
            (["airport", "park"], 4),
            (["airport", "metro"], 1),
        ]
    )
    assert ranked(4) == everything[:2]  # 4 errors: kept
    assert ranked(5) == everything[:1]
    assert ranked(6) == []
    with pytest.raises(ValueError, match="min_pair_errors must be an int"):
        rank_confusing_pairs(VALID, LABELS, min_pair_errors=-1)


def test_no_pair_qualifies_means_no_specialist(tmp_path, capsys):
    from find_confusing_pairs import find_confusing_pairs

    write_results(tmp_path / "valid_results.json", VALID)
    path = find_confusing_pairs(tmp_path, top_k=2, min_pair_errors=6)
    assert read_confusing_pairs(path) == []
    content = json.loads(path.read_text())
    assert content["ranked_from"] == "validation split, 36 clips"
    assert content["min_pair_errors"] == 6 and content["ranking"] == []
    assert capsys.readouterr().out == (
        "[pairs] validation split, 36 clips: no pair has 6 or more mutual "
        "errors, so no specialist is trained\n"
    )
    find_confusing_pairs(tmp_path, top_k=2, min_pair_errors=5)
    assert [p["pair"] for p in read_confusing_pairs(path)] == [
        ["metro", "tram"]
    ]
    assert capsys.readouterr().out == (
        "[pairs] validation split, 36 clips: metro/tram\n"
    )
    # By hand, a pair below the floor keeps its count.
    find_confusing_pairs(tmp_path, pairs="park,airport", min_pair_errors=5)
    content = json.loads(path.read_text())
    assert content["pairs"][0]["count"] == 4
    assert content["ranked_from"] == "given by hand"


def test_out_of_fold_matrices_rank_every_training_clip(tmp_path, capsys):
    from find_confusing_pairs import find_confusing_pairs

    write_results(tmp_path / "valid_results.json", VALID)
    # Three folds whose summed errors put airport/park first.
    folds = [np.diag([9, 9, 9, 9]) for _ in range(3)]
    for k, fold in enumerate(folds):
        fold[0, 2] = 2 + k
        fold[1, 3] = 1
    files = [
        write_results(tmp_path / f"fold{k}.json", fold)
        for k, fold in enumerate(folds)
    ]
    path = find_confusing_pairs(
        tmp_path, top_k=1, min_pair_errors=4, fold_results=files
    )
    content = json.loads(path.read_text())
    assert [p["pair"] for p in content["pairs"]] == [["airport", "park"]]
    assert content["pairs"][0]["count"] == 2 + 3 + 4
    assert len(content["ranking"]) == 1  # metro/tram: 3 < 4
    clips = sum(int(f.sum()) for f in folds)
    assert content["ranked_from"] == (
        f"out-of-fold predictions of {clips} training clips (3 folds)"
    )
    assert capsys.readouterr().out.startswith(
        f"[pairs] out-of-fold predictions of {clips} training clips"
    )
    bad = write_results(tmp_path / "bad.json", folds[0], LABELS[::-1])
    with pytest.raises(ValueError, match="bad.json has labels"):
        pool_confusion(files + [bad])


def test_bad_input_is_one_line(tmp_path):
    from find_confusing_pairs import main

    with pytest.raises(SystemExit) as error:
        main([str(tmp_path), "--fold_results", str(tmp_path / "f.json")])
    assert str(error.value) == (
        f"find_confusing_pairs.py: fold results {tmp_path / 'f.json'} "
        "is missing"
    )


def test_accuracy_outside_the_pair_counts_the_other_scenes():
    targets, predictions = random_predictions(3, n=300, n_classes=4)
    matrix = confusion_matrix(targets, predictions, 4)
    pair = ["metro", "tram"]
    outside = [
        t == p
        for t, p in zip(targets, predictions, strict=True)
        if LABELS[t] not in pair
    ]
    assert accuracy_outside_pair(matrix, LABELS, pair) == pytest.approx(
        sum(outside) / len(outside)
    )
    # A clip of another scene taken for one of the pair is an error there.
    assert accuracy_outside_pair(VALID, LABELS, ["metro", "tram"]) == 13 / 18
    assert accuracy_outside_pair(VALID, LABELS, ["park", "metro"]) == 14 / 19
