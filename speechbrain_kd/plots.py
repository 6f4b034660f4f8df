"""Confusion-matrix figures, with the confusing pairs outlined.

Written with matplotlib's object API (no pyplot state, so it is safe in
loader workers and threads) and saved whole or not at all.
"""

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
