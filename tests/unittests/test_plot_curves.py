"""The learning-curve figure of every phase."""

import numpy as np
import pytest
from matplotlib.image import imread

from speechbrain_kd.epochs import write_learning_curve
from speechbrain_kd.plots import plot_learning_curves, read_learning_curve


def write_curve(path, epochs=3, pair=False, valid_shift=0.0):
    for epoch in range(1, epochs + 1):
        row = {
            "epoch": epoch,
            "train_loss": 2.0 / epoch,
            "valid_loss": 2.5 / epoch + valid_shift,
            "accuracy": 0.2 * epoch,
        }
        if pair:
            row["pair_accuracy"] = 0.9 - 0.1 * epoch
        row["lr"] = 0.01 / epoch
        write_learning_curve(path, row)
    return path


def test_every_phase_and_quantity_is_drawn(tmp_path):
    base = write_curve(tmp_path / "b.csv")
    spec = write_curve(tmp_path / "s.csv", epochs=2, pair=True)
    moved = write_curve(tmp_path / "m.csv", valid_shift=0.7)
    one, two = tmp_path / "one.png", tmp_path / "two.png"
    plot_learning_curves({"baseline": base}, one)
    plot_learning_curves({"baseline": base, "specialist": spec}, two)
    assert not np.array_equal(imread(one), imread(two))
    # The validation loss is drawn: moving it changes the image.
    again = tmp_path / "again.png"
    plot_learning_curves({"baseline": moved}, again)
    assert not np.array_equal(imread(one), imread(again))
    assert read_learning_curve(spec)["pair_accuracy"] == pytest.approx(
        [0.8, 0.7]
    )


def test_bad_curves_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv is missing"):
        plot_learning_curves({"x": tmp_path / "nope.csv"}, tmp_path / "a.png")
    bad = tmp_path / "bad.csv"
    bad.write_text("epoch,accuracy\n1,0.5\n2,high\n")
    with pytest.raises(ValueError, match="bad.csv, line 3: accuracy is 'high'"):
        plot_learning_curves({"x": bad}, tmp_path / "a.png")
    bad.write_text("step,accuracy\n1,0.5\n")
    with pytest.raises(ValueError, match="no 'epoch' column"):
        read_learning_curve(bad)
    with pytest.raises(ValueError, match="no learning curve"):
        plot_learning_curves({}, tmp_path / "a.png")
    assert not (tmp_path / "a.png").exists()


def test_a_curve_file_that_is_not_one_is_named(tmp_path):
    path = tmp_path / "learning_curve.csv"
    path.write_text("epoch,accuracy\n1,0.5\nlast,0.6\n")
    with pytest.raises(ValueError, match="line 3: epoch 'last' is not an"):
        write_learning_curve(path, {"epoch": 2, "accuracy": 0.7})
    assert path.read_text() == "epoch,accuracy\n1,0.5\nlast,0.6\n"
