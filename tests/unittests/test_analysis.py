"""Confusion counts, pair ranking with ties, pair files, reports, ensembles,
plots."""

import json

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from speechbrain_kd.analysis import (
    classification_report,
    confusion_matrix,
    ensemble_posteriors,
    pair_errors,
    parse_pairs,
    plot_confusion_matrices,
    plot_confusion_matrix,
    rank_confusing_pairs,
    read_confusing_pairs,
    symmetric_confusion,
    write_confusing_pairs,
    write_json_atomic,
)

LABELS = ["a", "b", "c", "d"]
# a/b: 2+2; c/d: 3+1; a/d: 1+3 -> all count 4.
TIED = np.array([[9, 2, 0, 1], [2, 9, 0, 0], [0, 0, 9, 3], [3, 0, 1, 9]])


def random_predictions(seed, n=200, n_classes=4):
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, n_classes, n)
    noise = rng.integers(0, n_classes, n)
    predictions = np.where(rng.random(n) < 0.6, targets, noise)
    return targets, predictions


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


def test_ranking_breaks_ties_by_direction_then_label_order():
    ranked = rank_confusing_pairs(TIED, LABELS)
    # a/d and c/d both have a one-way count of 3: label order decides.
    assert [p["pair"] for p in ranked] == [["a", "d"], ["c", "d"], ["a", "b"]]
    assert ranked[0] == {
        "pair": ["a", "d"],
        "count": 4,
        "a_as_b": 1,
        "b_as_a": 3,
    }
    assert rank_confusing_pairs(TIED, LABELS, top_k=2) == ranked[:2]
    # Renaming the classes so that c/d come first puts c/d before a/d.
    renamed = rank_confusing_pairs(TIED[::-1, ::-1], LABELS[::-1])
    assert [p["pair"] for p in renamed][:2] == [["d", "c"], ["d", "a"]]


def test_ranking_is_sorted_and_lists_each_pair_once():
    targets, predictions = random_predictions(2, n=300, n_classes=6)
    labels = [f"s{k}" for k in range(6)]
    cm = confusion_matrix(targets, predictions, 6)
    ranked = rank_confusing_pairs(cm, labels)
    sym = symmetric_confusion(cm)
    assert len(ranked) == np.count_nonzero(np.triu(sym))
    keys = []
    for p in ranked:
        i, j = (labels.index(x) for x in p["pair"])
        assert i < j and p["count"] == sym[i, j] > 0
        assert (p["a_as_b"], p["b_as_a"]) == (cm[i, j], cm[j, i])
        keys.append((-p["count"], -max(cm[i, j], cm[j, i]), i, j))
    assert keys == sorted(keys)


def test_pairs_without_errors_are_left_out_and_bad_shapes_named():
    assert rank_confusing_pairs(np.eye(4, dtype=int), LABELS) == []
    with pytest.raises(ValueError, match="does not match the 3 labels"):
        rank_confusing_pairs(TIED, LABELS[:3])
    with pytest.raises(ValueError, match="top_k"):
        rank_confusing_pairs(TIED, LABELS, top_k=-1)


def test_pair_file_round_trip(tmp_path):
    path = tmp_path / "pairs.json"
    ranking = rank_confusing_pairs(TIED, LABELS)
    write_confusing_pairs(path, ranking, LABELS, source="valid", top_k=2)
    assert [p["pair"] for p in read_confusing_pairs(path)] == [
        ["a", "d"],
        ["c", "d"],
    ]
    content = json.loads(path.read_text())
    assert content["labels"] == LABELS and content["ranking"] == ranking
    assert content["top_k"] == 2 and content["source"] == "valid"
    # Pairs given by hand; top_k defaults to all of them.
    write_confusing_pairs(path, [["d", "b"]], LABELS)
    assert read_confusing_pairs(path, labels=LABELS) == [{"pair": ["d", "b"]}]
    assert [p.name for p in tmp_path.iterdir()] == ["pairs.json"]


def test_pair_file_validation_names_the_file(tmp_path):
    path = tmp_path / "pairs.json"
    with pytest.raises(ValueError, match="unknown scene 'z'"):
        write_confusing_pairs(path, [["a", "z"]], LABELS)
    assert not path.exists()
    write_confusing_pairs(path, rank_confusing_pairs(TIED, LABELS), LABELS)
    with pytest.raises(ValueError, match="pairs.json: unknown scene 'a'"):
        read_confusing_pairs(path, labels=["x", "y", "c", "d"])
    for content, message in [
        ("{not json", "not valid JSON"),
        ('{"labels": ["a", "b"]}', "no 'pairs' list"),
        ('{"labels": ["a"], "pairs": [{"count": 2}]}', "pairs\\[0\\] has no"),
        ('{"labels": ["a", "b"], "pairs": [{"pair": ["a", "a"]}]}', "two"),
    ]:
        path.write_text(content)
        with pytest.raises(ValueError, match=message):
            read_confusing_pairs(path)
    with pytest.raises(FileNotFoundError, match="missing.json is missing"):
        read_confusing_pairs(tmp_path / "missing.json")


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "x.json"
    write_json_atomic(path, {"a": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_parse_pairs_by_hand():
    assert parse_pairs(" a , b ;c,d;", LABELS) == [["a", "b"], ["c", "d"]]
    assert parse_pairs([["d", "a"], "b,c"], LABELS) == [["d", "a"], ["b", "c"]]
    assert parse_pairs([{"pair": ["a", "b"], "count": 3}], LABELS) == [
        ["a", "b"]
    ]
    for spec, message in [
        ("a,a", "two different scenes"),
        (["a", "b"], "two different scenes"),
        ("a,b,c", "two different scenes"),
        ("a,beach", "unknown scene 'beach'"),
        ("a,b;b,a", "given twice"),
        ("", "no pair"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_pairs(spec, LABELS)


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


def test_ensemble_of_probs_and_log_probs():
    logits = torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(0))
    probs = logits.softmax(-1)
    expected = probs.mean(0).numpy()
    assert np.allclose(ensemble_posteriors(probs.numpy()), expected, atol=1e-6)
    log_probs = list(logits.log_softmax(-1))
    assert np.allclose(ensemble_posteriors(log_probs), expected, atol=1e-6)
    weighted = ensemble_posteriors(probs, weights=[2, 0, 2])
    assert np.allclose(weighted, probs[[0, 2]].mean(0).numpy(), atol=1e-6)
    assert np.allclose(weighted.sum(-1), 1)


def test_ensemble_errors():
    p = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    with pytest.raises(ValueError, match="3 weights given for 2 models"):
        ensemble_posteriors(p, [1, 2, 3])
    with pytest.raises(ValueError, match="positive sum"):
        ensemble_posteriors(p, [0, 0])
    with pytest.raises(ValueError, match="neither probabilities nor log"):
        ensemble_posteriors(np.array([[[2.0, -1.0]]]))
    with pytest.raises(ValueError, match="different shapes"):
        ensemble_posteriors([np.ones((1, 2)) / 2, np.ones((1, 3)) / 3])


def test_plot_highlights_pairs_and_writes_atomically(tmp_path):
    cm = [[3, 1, 0], [2, 4, 0], [0, 1, 5]]
    plain, marked = tmp_path / "plain.png", tmp_path / "marked.png"
    plot_confusion_matrix(cm, "xyz", plain, title="t")
    plot_confusion_matrix(
        cm, "xyz", marked, title="t", highlight_pairs=[["x", "y"]]
    )
    a, b = imread(plain), imread(marked)
    assert a.shape == b.shape and not np.array_equal(a, b)
    # The outline is red: more strongly red pixels with the highlight.
    red = (b[..., 0] > 0.8) & (b[..., 1] < 0.3) & (b[..., 2] < 0.3)
    red_plain = (a[..., 0] > 0.8) & (a[..., 1] < 0.3) & (a[..., 2] < 0.3)
    assert red.sum() > red_plain.sum()
    with pytest.raises(ValueError, match="unknown scene 'q'"):
        plot_confusion_matrix(
            cm, "xyz", tmp_path / "bad.png", None, [["x", "q"]]
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "marked.png",
        "plain.png",
    ]


def test_plot_several_panels(tmp_path):
    cms = {"baseline": TIED, "spec a-d": TIED, "student": TIED}
    one, wide = tmp_path / "one.png", tmp_path / "wide.png"
    plot_confusion_matrix(TIED, LABELS, one)
    plot_confusion_matrices(
        cms, LABELS, wide, highlight_pairs={"spec a-d": [["a", "d"]]}
    )
    assert imread(wide).shape[1] > 2 * imread(one).shape[1]
    plot_confusion_matrices(cms, LABELS, wide, highlight_pairs=[["a", "b"]])
    with pytest.raises(ValueError, match="panels \\['nope'\\]"):
        plot_confusion_matrices(
            cms, LABELS, wide, highlight_pairs={"nope": [["a", "b"]]}
        )
