"""Pair ranking with ties, pair files and their validation."""

import json

import numpy as np
import pytest

from speechbrain_kd.metrics import confusion_matrix, symmetric_confusion
from speechbrain_kd.pairs import (
    parse_pairs,
    rank_confusing_pairs,
    read_confusing_pairs,
    write_confusing_pairs,
)
from tests.conftest import random_predictions

LABELS = ["a", "b", "c", "d"]
# a/b: 2+2; c/d: 3+1; a/d: 1+3 -> all count 4.
TIED = np.array([[9, 2, 0, 1], [2, 9, 0, 0], [0, 0, 9, 3], [3, 0, 1, 9]])


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
    # Pairs given by hand, named in label order; top_k defaults to all.
    write_confusing_pairs(path, [["d", "b"]], LABELS)
    assert read_confusing_pairs(path, labels=LABELS) == [{"pair": ["b", "d"]}]
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


def test_parse_pairs_by_hand():
    assert parse_pairs(" a , b ;c,d;", LABELS) == [["a", "b"], ["c", "d"]]
    # Each pair in label order whatever order it was written in.
    assert parse_pairs([["d", "a"], "c,b"], LABELS) == [["a", "d"], ["b", "c"]]
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


def test_top_k_of_zero_and_the_file_fields(tmp_path):
    assert rank_confusing_pairs(TIED, LABELS, top_k=0) == []
    ranked = rank_confusing_pairs(TIED, LABELS)
    path = tmp_path / "pairs.json"
    write_confusing_pairs(path, ranked, LABELS, top_k=0)
    content = json.loads(path.read_text())
    assert content["source"] is None and content["pairs"] == []
    assert content["top_k"] == 0
    assert content["tie_break"].startswith("count descending")
    for bad in (-1, 1.5):
        with pytest.raises(ValueError, match="top_k"):
            write_confusing_pairs(path, ranked, LABELS, top_k=bad)


def test_messages_name_what_is_missing(tmp_path):
    with pytest.raises(
        ValueError, match=r"^entry \{'count': 3\} has no 'pair'"
    ):
        parse_pairs([{"count": 3}], LABELS)
    with pytest.raises(ValueError, match=r"\(write pairs as 'a,b;c,d' or "):
        parse_pairs("a,a", LABELS)
    with pytest.raises(FileNotFoundError, match=r"first, or give target_pair$"):
        read_confusing_pairs(tmp_path / "none.json")
    path = tmp_path / "bare.json"
    path.write_text(json.dumps({"pairs": [{"pair": ["a", "b"]}]}))
    with pytest.raises(
        ValueError, match=r"bare.json has no 'labels' and none were given$"
    ):
        read_confusing_pairs(path)
    assert read_confusing_pairs(path, LABELS)[0]["pair"] == ["a", "b"]


def test_pair_errors_refuse_a_matrix_of_another_label_set():
    from speechbrain_kd.pairs import pair_errors

    with pytest.raises(ValueError, match=r"does not match the 3 labels"):
        pair_errors(np.eye(2), LABELS[:3], ["a", "b"])


@pytest.mark.parametrize("errors", [0, 3])
def test_a_pair_by_hand_has_one_name_whatever_the_ranking(tmp_path, errors):
    """``--pairs tram,metro`` names the pair in label order whether the
    baseline made errors in it (the ranking's entry) or none (the fallback),
    so the pair's name does not depend on what a training learned."""
    from find_confusing_pairs import find_confusing_pairs

    labels = ["airport", "metro", "tram"]
    matrix = np.diag([5, 5, 5])
    matrix[1, 2] = errors
    (tmp_path / "valid_results.json").write_text(
        json.dumps({"labels": labels, "confusion_matrix": matrix.tolist()})
    )
    find_confusing_pairs(tmp_path, pairs="tram,metro;airport,tram")
    listed = json.loads((tmp_path / "confusing_pairs.json").read_text())
    assert [p["pair"] for p in listed["pairs"]] == [
        ["metro", "tram"],
        ["airport", "tram"],
    ]
    assert listed["pairs"][0]["count"] == errors
