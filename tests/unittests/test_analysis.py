"""Pair ranking with ties, pair errors, reports, ensembles, pair files."""

import numpy as np
import pytest

from speechbrain_kd.analysis import (
    classification_report,
    ensemble_posteriors,
    pair_errors,
    parse_pairs,
    rank_confusing_pairs,
    read_confusing_pairs,
    symmetric_confusion,
    write_confusing_pairs,
)

LABELS = ["a", "b", "c", "d"]


def test_symmetric_counts_both_directions():
    cm = np.array([[5, 2, 0, 0], [3, 4, 1, 0], [0, 0, 6, 2], [1, 0, 2, 3]])
    sym = symmetric_confusion(cm)
    assert sym[0, 1] == sym[1, 0] == 5 and np.trace(sym) == 0


def test_ranking_breaks_ties_by_direction_then_label_order():
    # a/b: 2+2; c/d: 3+1; a/d: 1+3 -> all count 4.
    cm = np.array([[9, 2, 0, 1], [2, 9, 0, 0], [0, 0, 9, 3], [3, 0, 1, 9]])
    ranked = rank_confusing_pairs(cm, LABELS)
    assert [p["pair"] for p in ranked] == [["a", "d"], ["c", "d"], ["a", "b"]]
    assert ranked[0] == {
        "pair": ["a", "d"],
        "count": 4,
        "a_as_b": 1,
        "b_as_a": 3,
    }
    # The same matrix with labels in another order ranks by the new order.
    again = rank_confusing_pairs(cm, LABELS, top_k=2)
    assert again == ranked[:2]


def test_pairs_without_errors_are_left_out():
    assert rank_confusing_pairs(np.eye(4, dtype=int), LABELS) == []


def test_pair_file_round_trip_and_validation(tmp_path):
    cm = np.array([[9, 2, 0, 1], [2, 9, 0, 0], [0, 0, 9, 3], [3, 0, 1, 9]])
    path = tmp_path / "pairs.json"
    write_confusing_pairs(
        path, rank_confusing_pairs(cm, LABELS), LABELS, "valid", 2
    )
    assert [p["pair"] for p in read_confusing_pairs(path)] == [
        ["a", "d"],
        ["c", "d"],
    ]
    with pytest.raises(ValueError, match="unknown scene 'a'"):
        read_confusing_pairs(path, labels=["x", "y", "c", "d"])


def test_parse_pairs_by_hand():
    assert parse_pairs("a,b;c,d", LABELS) == [["a", "b"], ["c", "d"]]
    with pytest.raises(ValueError, match="two different scenes"):
        parse_pairs("a,a", LABELS)


def test_pair_errors_and_report():
    targets = [0, 0, 1, 1, 2, 3]
    predictions = [0, 1, 0, 1, 2, 2]
    report = classification_report(targets, predictions, LABELS)
    assert report["accuracy"] == pytest.approx(3 / 6)
    assert report["classwise_accuracy"] == {
        "a": 0.5,
        "b": 0.5,
        "c": 1.0,
        "d": 0.0,
    }
    assert pair_errors(report["confusion_matrix"], LABELS, ["b", "a"]) == 2
    assert pair_errors(report["confusion_matrix"], LABELS, ["c", "d"]) == 1


def test_ensemble_weights():
    p = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    assert np.allclose(ensemble_posteriors(p), [[0.5, 0.5]])
    assert np.allclose(ensemble_posteriors(p, [1, 3]), [[0.25, 0.75]])
    with pytest.raises(ValueError, match="3 weights given for 2"):
        ensemble_posteriors(p, [1, 2, 3])
