"""Confusion counts and classification reports."""

import json

import numpy as np
import pytest

from speechbrain_kd.metrics import (
    classification_report,
    confusion_matrix,
    read_predictions,
    symmetric_confusion,
    write_predictions,
)
from speechbrain_kd.pairs import pair_errors
from tests.conftest import random_predictions

LABELS = ["a", "b", "c", "d"]


def test_confusion_matrix_counts_rows_true_columns_predicted():
    targets, predictions = random_predictions(0)
    cm = confusion_matrix(targets, predictions, 4)
    for i in range(4):
        for j in range(4):
            assert cm[i, j] == np.sum((targets == i) & (predictions == j))
    assert confusion_matrix([1], [2], 3)[1, 2] == 1
    assert cm.dtype.kind == "i"


@pytest.mark.parametrize(
    "targets,predictions,message",
    [
        ([0, 4], [0, 1], "targets\\[1\\] = 4"),
        ([0, 1], [-1, 1], "predictions\\[0\\] = -1"),
        ([0, 1, 2], [0, 1], "3 targets but 2 predictions"),
        ([0.5, 1], [0, 1], "class indices"),
    ],
)
def test_confusion_matrix_rejects_bad_indices(targets, predictions, message):
    with pytest.raises(ValueError, match=message):
        confusion_matrix(targets, predictions, 4)


def test_symmetric_counts_both_directions():
    targets, predictions = random_predictions(1)
    cm = confusion_matrix(targets, predictions, 4)
    sym = symmetric_confusion(cm)
    assert np.array_equal(sym, sym.T) and np.trace(sym) == 0
    assert sym[0, 1] == cm[0, 1] + cm[1, 0]
    with pytest.raises(ValueError, match="square"):
        symmetric_confusion(np.zeros((2, 3)))


def test_pair_errors_and_report():
    targets, predictions = random_predictions(3)
    report = classification_report(targets, predictions, LABELS)
    assert report["accuracy"] == pytest.approx(np.mean(targets == predictions))
    for k, label in enumerate(LABELS):
        mask = targets == k
        assert report["classwise_accuracy"][label] == pytest.approx(
            np.mean(predictions[mask] == k)
        )
    assert report["n_clips"] == len(targets)
    assert report["labels"] == LABELS
    cm = np.array(report["confusion_matrix"])
    ab = np.sum((targets == 0) & (predictions == 1)) + np.sum(
        (targets == 1) & (predictions == 0)
    )
    assert pair_errors(cm, LABELS, ["b", "a"]) == ab
    with pytest.raises(ValueError, match="unknown scene 'e'"):
        pair_errors(cm, LABELS, ["a", "e"])
    json.dumps(report)  # plain JSON


def test_report_class_without_clips_and_empty_input():
    report = classification_report([0, 0], [0, 1], ["a", "b"])
    assert report["classwise_accuracy"] == {"a": 0.5, "b": None}
    with pytest.raises(ValueError, match="no clip"):
        classification_report([], [], ["a", "b"])


def test_bad_class_indices_and_counts_are_named():
    assert confusion_matrix([0.0, 1.0], [1.0, 1.0], 2).tolist() == [
        [0, 1],
        [0, 1],
    ]
    assert confusion_matrix([0], [0], 1).tolist() == [[1]]  # one class
    for targets, message in [
        ([[0, 1]], r"^targets must be 1-D, got shape \(1, 2\)$"),
        ([0.0, np.inf], "^targets must hold class indices"),
        ([0.5, 1.0], "^targets must hold class indices"),
        (["a", "b"], "^targets must hold class indices"),
    ]:
        with pytest.raises(ValueError, match=message):
            confusion_matrix(targets, [0, 1], 2)
    for n_classes in (0, 2.5):
        with pytest.raises(ValueError, match="^n_classes must be a positive"):
            confusion_matrix([0], [0], n_classes)
    with pytest.raises(ValueError, match="^no clip to evaluate: targets is"):
        classification_report([], [], ["a"])
    with pytest.raises(
        ValueError, match=r"^confusion matrix \(2, 2\) does not match the 3 "
    ):
        pair_errors(np.eye(2), LABELS[:3], ["a", "b"])


def test_grouped_accuracy_needs_one_group_per_clip():
    from speechbrain_kd.metrics import grouped_accuracy

    with pytest.raises(
        ValueError, match="^2 targets, 2 predictions and 1 groups: one of"
    ):
        grouped_accuracy([0, 1], [0, 1], ["a"])


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_whole_float_indices_of_any_precision_are_class_indices(dtype):
    # Indices that went through a float tensor (torch's default float32).
    targets, predictions = [0, 2, 1, 2], [0, 1, 1, 2]
    as_floats = [np.array(v, dtype=dtype) for v in (targets, predictions)]
    assert np.array_equal(
        confusion_matrix(*as_floats, 3),
        confusion_matrix(targets, predictions, 3),
    )


def test_predictions_file_holds_the_argmax_of_each_clip(tmp_path):
    targets, _ = random_predictions(3, n=50)
    posteriors = np.random.default_rng(3).dirichlet(np.ones(4), 50)
    ids = [f"clip{k}" for k in range(50)]
    path = tmp_path / "test_predictions.csv"
    write_predictions(path, ids, targets, posteriors, LABELS)
    clips = read_predictions(path)
    assert list(clips) == ids
    assert [t for t, _ in clips.values()] == [LABELS[t] for t in targets]
    assert [p for _, p in clips.values()] == [
        LABELS[k] for k in posteriors.argmax(axis=1)
    ]
    with pytest.raises(ValueError):  # one target per clip
        write_predictions(path, ids, targets[:-1], posteriors, LABELS)


def test_predictions_files_with_a_missing_column_or_a_clip_twice(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("ID,target\nc1,a\n")
    with pytest.raises(ValueError, match=r"p.csv has no column prediction"):
        read_predictions(path)
    path.write_text("ID\nc1\n")
    with pytest.raises(ValueError, match=r"no column prediction, target$"):
        read_predictions(path)
    path.write_text("ID,target,prediction\nc1,a,a\nc1,a,b\n")
    with pytest.raises(ValueError, match=r"p.csv lists clip c1 twice"):
        read_predictions(path)
