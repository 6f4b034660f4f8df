"""Confusion-matrix figures."""

import numpy as np
import pytest
from matplotlib.image import imread

from speechbrain_kd.plots import plot_confusion_matrices, plot_confusion_matrix

LABELS = ["a", "b", "c", "d"]
# a/b: 2+2; c/d: 3+1; a/d: 1+3 -> all count 4.
TIED = np.array([[9, 2, 0, 1], [2, 9, 0, 0], [0, 0, 9, 3], [3, 0, 1, 9]])


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
