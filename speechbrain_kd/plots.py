"""Confusion-matrix figures, with the confusing pairs outlined, and the
phases' learning curves.

Written with matplotlib's object API (no pyplot state, so it is safe in
loader workers and threads) and saved whole or not at all.
"""

import csv
from pathlib import Path

import numpy as np

from speechbrain_kd.files import replacing
from speechbrain_kd.metrics import _square
from speechbrain_kd.pairs import parse_pairs


def _pair_cells(pairs, labels):
    cells = []
    for pair in parse_pairs(pairs, labels) if pairs else []:
        a, b = (labels.index(label) for label in pair)
        cells += [(a, b), (b, a)]
    return cells


def _draw_confusion(ax, matrix, labels, title, highlight_pairs):
    from matplotlib.patches import Rectangle

    counts = _square(matrix, labels)
    matrix = counts.astype(float)
    rows = matrix.sum(axis=1, keepdims=True)
    # Row-normalised colours: recall per true class, comparable across
    # classes with different clip counts.
    norm = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ticks = list(range(len(labels)))
    ax.set_xticks(ticks, labels, rotation=90, fontsize=7)
    ax.set_yticks(ticks, labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in ticks:
        for j in ticks:
            if counts[i, j] or i == j:
                ax.text(
                    j,
                    i,
                    f"{counts[i, j]:g}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if norm[i, j] > 0.5 else "black",
                )
    for i, j in _pair_cells(highlight_pairs, labels):
        ax.add_patch(
            Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=2, ec="red")
        )
    if title:
        ax.set_title(title, fontsize=9)


def _new_figure(figsize):
    # A bare Figure on an Agg canvas: no pyplot, no global backend switch,
    # nothing kept open after saving.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def _save_figure(fig, path):
    suffix = Path(path).suffix or ".png"
    with replacing(path) as tmp:
        fig.savefig(tmp, format=suffix[1:], dpi=120, bbox_inches="tight")


def plot_confusion_matrix(
    matrix, labels, path, title=None, highlight_pairs=None
):
    """Save a confusion matrix as an image (PNG for a ``.png`` path).

    Colours are normalised per row (true class), cells show the counts, and
    the two off-diagonal cells of each highlighted pair are outlined in
    red. Written atomically (temporary file with the same suffix, then
    ``os.replace``).

    Arguments
    ---------
    matrix : array-like ``[n, n]``
        Confusion matrix (rows true, columns predicted).
    labels : sequence of str
        The class names, in matrix order.
    path : str or pathlib.Path
        Output image; its suffix picks the format.
    title : str, optional
        Shown above the matrix.
    highlight_pairs : list of pairs, optional
        Pairs of labels (e.g. a specialist's target pair) to outline.

    Example
    -------
    >>> path = getfixture("tmpdir") + "/cm.png"
    >>> plot_confusion_matrix([[3, 1], [0, 4]], ["a", "b"], path,
    ...                       highlight_pairs=[["a", "b"]])
    >>> open(path, "rb").read(4)
    b'\\x89PNG'
    """
    labels = list(labels)
    fig = _new_figure((5, 5))
    _draw_confusion(fig.add_subplot(), matrix, labels, title, highlight_pairs)
    _save_figure(fig, path)


def plot_confusion_matrices(
    matrices, labels, path, highlight_pairs=None, ncols=None
):
    """Save several confusion matrices side by side as one image.

    Used for the baseline next to each specialist (its target pair
    outlined) and the student. Written atomically.

    Arguments
    ---------
    matrices : dict of str -> array-like ``[n, n]``
        Panel title -> confusion matrix, in display order.
    labels : sequence of str
        The class names, in matrix order.
    path : str or pathlib.Path
        Output image; its suffix picks the format.
    highlight_pairs : dict or list, optional
        A dict panel title -> list of pairs outlined in that panel, or one
        list of pairs outlined in every panel.
    ncols : int, optional
        Panels per row (default: all in one row).

    Example
    -------
    >>> path = getfixture("tmpdir") + "/cms.png"
    >>> plot_confusion_matrices(
    ...     {"baseline": [[3, 1], [2, 2]], "specialist": [[4, 0], [1, 3]]},
    ...     ["a", "b"], path, highlight_pairs={"specialist": [["a", "b"]]})
    >>> open(path, "rb").read(4)
    b'\\x89PNG'
    """
    labels = list(labels)
    if not matrices:
        raise ValueError("no confusion matrix to plot")
    if isinstance(highlight_pairs, dict):
        unknown = sorted(set(highlight_pairs) - set(matrices))
        if unknown:
            raise ValueError(
                f"highlight_pairs names panels {unknown} that are not in "
                f"matrices {list(matrices)}"
            )
        per_panel = highlight_pairs
    else:
        per_panel = dict.fromkeys(matrices, highlight_pairs)
    ncols = len(matrices) if ncols is None else max(1, int(ncols))
    nrows = -(-len(matrices) // ncols)
    fig = _new_figure((4.5 * ncols, 4.8 * nrows))
    for k, (name, matrix) in enumerate(matrices.items()):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        _draw_confusion(ax, matrix, labels, name, per_panel.get(name))
    fig.tight_layout()
    _save_figure(fig, path)


# Panels of plot_learning_curves: title -> (column, line style) drawn.
CURVE_PANELS = {
    "loss": (("train_loss", "-"), ("valid_loss", "--")),
    "validation metric": (("accuracy", "-"), ("pair_accuracy", ":")),
    "learning rate": (("lr", "-"),),
}


def read_learning_curve(path):
    """Read a ``learning_curve.csv`` into ``{column: [float]}``.

    Empty cells (an epoch without a training stage) read as NaN, which
    matplotlib leaves out of a line.

    Arguments
    ---------
    path : str or pathlib.Path
        A file written by :func:`speechbrain_kd.epochs.write_learning_curve`.

    Returns
    -------
    dict of str -> list of float
        Every column, ``epoch`` included.

    Raises
    ------
    FileNotFoundError
        The file is missing.
    ValueError
        It has no ``epoch`` column, no rows or a cell that is not a number
        (the file and row are named).

    Example
    -------
    >>> path = getfixture("tmpdir") + "/learning_curve.csv"
    >>> _ = open(path, "w").write("epoch,train_loss,accuracy\\n1,,0.5\\n")
    >>> read_learning_curve(path)
    {'epoch': [1.0], 'train_loss': [nan], 'accuracy': [0.5]}
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: train the phase first")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        columns = reader.fieldnames or []
    if "epoch" not in columns or not rows:
        raise ValueError(f"{path} has no 'epoch' column or no rows")
    curve = {column: [] for column in columns}
    for line, row in enumerate(rows, start=2):
        for column in columns:
            try:
                curve[column].append(float(row[column] or "nan"))
            except (TypeError, ValueError):
                raise ValueError(
                    f"{path}, line {line}: {column} is {row[column]!r}, "
                    "not a number"
                ) from None
    return curve


def plot_learning_curves(curves, path):
    """Save every phase's learning curves in one image.

    Three panels, one per quantity: the losses (training solid, validation
    dashed), the validation metrics (accuracy solid, a specialist's pair
    accuracy dotted) and the learning rate (log scale), against the epoch;
    one colour per phase. Written atomically.

    Arguments
    ---------
    curves : dict of str -> path
        Phase name -> its ``learning_curve.csv``, in legend order.
    path : str or pathlib.Path
        Output image; its suffix picks the format.

    Example
    -------
    >>> folder = getfixture("tmpdir")
    >>> _ = open(folder + "/b.csv", "w").write(
    ...     "epoch,train_loss,valid_loss,accuracy,lr\\n"
    ...     "1,1.2,1.1,0.4,0.01\\n2,0.9,1.0,0.5,0.01\\n")
    >>> _ = open(folder + "/s.csv", "w").write(
    ...     "epoch,train_loss,valid_loss,accuracy,pair_accuracy,lr\\n"
    ...     "1,0.8,0.9,0.5,0.6,0.001\\n")
    >>> plot_learning_curves({"baseline": folder + "/b.csv",
    ...                       "specialist": folder + "/s.csv"},
    ...                      folder + "/curves.png")
    >>> open(folder + "/curves.png", "rb").read(4)
    b'\\x89PNG'
    """
    if not curves:
        raise ValueError("no learning curve to plot")
    read = {
        name: read_learning_curve(csv_path) for name, csv_path in curves.items()
    }
    fig = _new_figure((4.5 * len(CURVE_PANELS), 4))
    colours = [f"C{k % 10}" for k in range(len(read))]
    for k, (title, lines) in enumerate(CURVE_PANELS.items()):
        ax = fig.add_subplot(1, len(CURVE_PANELS), k + 1)
        for colour, (name, curve) in zip(colours, read.items(), strict=True):
            for column, style in lines:
                if column in curve:
                    ax.plot(
                        curve["epoch"],
                        curve[column],
                        style,
                        color=colour,
                        marker=".",
                        label=f"{name} {column}",
                    )
        if title == "learning rate" and ax.lines:
            ax.set_yscale("log")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
        if ax.lines:
            ax.legend(fontsize=6)
    fig.tight_layout()
    _save_figure(fig, path)
