"""Confusion analysis, confusing pairs, ensembles, reports and plots.

Phase 2 of Jung et al., "Knowledge Distillation in Acoustic Scene
Classification", IEEE Access 2020: the baseline's confusion matrix on held-out
data is made symmetric (C + C^T) and its off-diagonal pairs are ranked; the
top k become the specialists' target pairs.
"""

import json
import os
import tempfile
from pathlib import Path

import numpy as np


def write_json_atomic(path, obj):
    """Write ``obj`` as JSON to ``path`` whole or not at all.

    Arguments
    ---------
    path : str or pathlib.Path
    obj : JSON-serialisable object

    Example
    -------
    >>> path = getfixture("tmpdir") + "/x.json"
    >>> write_json_atomic(path, {"a": 1})
    >>> open(path).read()
    '{\\n  "a": 1\\n}'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def confusion_matrix(targets, predictions, n_classes):
    """Counts ``[n, n]``: row = true class, column = predicted class.

    Arguments
    ---------
    targets, predictions : sequence of int
    n_classes : int

    Returns
    -------
    numpy.ndarray

    Example
    -------
    >>> confusion_matrix([0, 0, 1, 2], [0, 1, 1, 2], 3)
    array([[1, 1, 0],
           [0, 1, 0],
           [0, 0, 1]])
    """
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(targets), np.asarray(predictions)), 1)
    return matrix


def symmetric_confusion(matrix):
    """``C + C^T`` with a zero diagonal: errors between two classes.

    Example
    -------
    >>> symmetric_confusion(np.array([[5, 2], [3, 4]]))
    array([[0, 5],
           [5, 0]])
    """
    matrix = np.asarray(matrix)
    sym = matrix + matrix.T
    np.fill_diagonal(sym, 0)
    return sym


def rank_confusing_pairs(matrix, labels, top_k=None):
    """Rank the unordered pairs of classes by their mutual errors.

    Ties are broken deterministically: first by the larger one-way count
    (the pair with a dominant direction of error first), then by the
    position of the pair's labels in ``labels`` (earlier first). Pairs
    with no error are left out.

    Arguments
    ---------
    matrix : array-like ``[n, n]``
        Confusion matrix (rows true, columns predicted).
    labels : list of str
    top_k : int, optional

    Returns
    -------
    list of dict
        ``{"pair": [a, b], "count": int, "a_as_b": int, "b_as_a": int}``.

    Example
    -------
    >>> cm = [[9, 3, 0], [1, 8, 2], [0, 2, 7]]
    >>> [(p["pair"], p["count"]) for p in rank_confusing_pairs(cm, "xyz")]
    [(['x', 'y'], 4), (['y', 'z'], 4)]
    """
    matrix = np.asarray(matrix)
    if matrix.shape != (len(labels), len(labels)):
        raise ValueError(
            f"confusion matrix {matrix.shape} does not match "
            f"{len(labels)} labels"
        )
    pairs = []
    for i in range(len(labels)):
        for j in range(i + 1, len(labels)):
            count = int(matrix[i, j] + matrix[j, i])
            if count:
                pairs.append(
                    {
                        "pair": [labels[i], labels[j]],
                        "count": count,
                        "a_as_b": int(matrix[i, j]),
                        "b_as_a": int(matrix[j, i]),
                        "_key": (
                            -count,
                            -max(matrix[i, j], matrix[j, i]),
                            i,
                            j,
                        ),
                    }
                )
    pairs.sort(key=lambda p: p["_key"])
    for p in pairs:
        del p["_key"]
    return pairs if top_k is None else pairs[:top_k]


def parse_pairs(spec, labels):
    """Read pairs given by hand: ``"a,b;c,d"`` or ``[[a, b], [c, d]]``.

    Arguments
    ---------
    spec : str or list
    labels : list of str
        The known classes.

    Returns
    -------
    list of list of str

    Example
    -------
    >>> parse_pairs("metro,tram; airport,shopping_mall",
    ...             ["airport", "metro", "shopping_mall", "tram"])
    [['metro', 'tram'], ['airport', 'shopping_mall']]
    >>> parse_pairs([["metro", "beach"]], ["metro", "tram"])
    Traceback (most recent call last):
    ...
    ValueError: unknown scene 'beach' in pair ['metro', 'beach']; known: ...
    """
    if isinstance(spec, str):
        spec = [
            [part.strip() for part in chunk.split(",")]
            for chunk in spec.split(";")
            if chunk.strip()
        ]
    pairs = []
    for pair in spec:
        pair = list(pair)
        if len(pair) != 2 or pair[0] == pair[1]:
            raise ValueError(f"a pair needs two different scenes, got {pair}")
        for label in pair:
            if label not in labels:
                raise ValueError(
                    f"unknown scene {label!r} in pair {pair}; known: "
                    f"{list(labels)}"
                )
        pairs.append(pair)
    return pairs


def write_confusing_pairs(path, ranking, labels, source, top_k):
    """Write ``confusing_pairs.json``: the top k and the full ranking.

    Arguments
    ---------
    path : str or pathlib.Path
    ranking : list of dict
        From :func:`rank_confusing_pairs` (or pairs given by hand).
    labels : list of str
    source : str
        Where the confusion matrix came from.
    top_k : int

    Example
    -------
    >>> path = getfixture("tmpdir") + "/pairs.json"
    >>> ranking = rank_confusing_pairs([[5, 2], [1, 6]], ["a", "b"])
    >>> write_confusing_pairs(path, ranking, ["a", "b"], "demo", 1)
    >>> read_confusing_pairs(path)[0]["pair"]
    ['a', 'b']
    """
    write_json_atomic(
        path,
        {
            "source": source,
            "labels": list(labels),
            "top_k": top_k,
            "pairs": ranking[:top_k],
            "ranking": ranking,
        },
    )


def read_confusing_pairs(path, labels=None):
    """Read the top-k pairs of ``confusing_pairs.json``, checked.

    Arguments
    ---------
    path : str or pathlib.Path
    labels : list of str, optional
        When given, every scene of every pair must be one of them.

    Returns
    -------
    list of dict
        Each with at least ``"pair"``.

    Example
    -------
    >>> read_confusing_pairs(getfixture("tmpdir") + "/none.json")
    Traceback (most recent call last):
    ...
    FileNotFoundError: ...none.json is missing: run find_confusing_pairs.py ...
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: run find_confusing_pairs.py on the "
            "baseline's output folder first, or give target_pair"
        )
    with open(path, encoding="utf-8") as f:
        content = json.load(f)
    known = labels if labels is not None else content.get("labels")
    pairs = content.get("pairs", [])
    if known is not None:
        parse_pairs([p["pair"] for p in pairs], known)
    return pairs


def pair_errors(matrix, labels, pair):
    """Clips of one scene of ``pair`` classified as the other.

    Example
    -------
    >>> pair_errors([[5, 2, 1], [3, 4, 0], [0, 0, 9]], "abc", ["a", "b"])
    5
    """
    matrix = np.asarray(matrix)
    i, j = (list(labels).index(label) for label in pair)
    return int(matrix[i, j] + matrix[j, i])


def classification_report(targets, predictions, labels):
    """Accuracy, class-wise accuracy and confusion matrix as plain JSON.

    Arguments
    ---------
    targets, predictions : sequence of int
    labels : list of str

    Returns
    -------
    dict

    Example
    -------
    >>> report = classification_report([0, 0, 1], [0, 1, 1], ["a", "b"])
    >>> report["accuracy"], report["classwise_accuracy"]
    (0.6666666666666666, {'a': 0.5, 'b': 1.0})
    """
    labels = list(labels)
    matrix = confusion_matrix(targets, predictions, len(labels))
    totals = matrix.sum(axis=1)
    n_clips = int(matrix.sum())
    return {
        "accuracy": float(np.trace(matrix) / max(n_clips, 1)),
        "classwise_accuracy": {
            label: float(matrix[k, k] / totals[k]) if totals[k] else None
            for k, label in enumerate(labels)
        },
        "confusion_matrix": matrix.tolist(),
        "labels": labels,
        "n_clips": n_clips,
    }


def ensemble_posteriors(probabilities, weights=None):
    """Weighted average of ``K`` models' posteriors ``[K, B, C]``.

    Example
    -------
    >>> p = np.array([[[0.9, 0.1]], [[0.3, 0.7]]])
    >>> ensemble_posteriors(p, weights=[3, 1])
    array([[0.75, 0.25]])
    """
    probabilities = np.asarray(probabilities, dtype=float)
    k = probabilities.shape[0]
    weights = np.ones(k) if weights is None else np.asarray(weights, float)
    if weights.shape != (k,):
        raise ValueError(f"{len(weights)} weights given for {k} models")
    return np.tensordot(weights / weights.sum(), probabilities, axes=1)


def _draw_confusion(ax, matrix, labels, title, highlight_pairs):
    matrix = np.asarray(matrix, dtype=float)
    rows = matrix.sum(axis=1, keepdims=True)
    norm = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ticks = range(len(labels))
    ax.set_xticks(ticks, labels, rotation=90, fontsize=7)
    ax.set_yticks(ticks, labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in ticks:
        for j in ticks:
            if matrix[i, j]:
                ax.text(
                    j,
                    i,
                    int(matrix[i, j]),
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if norm[i, j] > 0.5 else "black",
                )
    for pair in highlight_pairs or []:
        a, b = (list(labels).index(label) for label in pair)
        for i, j in ((a, b), (b, a)):
            ax.add_patch(
                _rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=2, ec="red")
            )
    if title:
        ax.set_title(title, fontsize=9)


def _rectangle(*args, **kwargs):
    from matplotlib.patches import Rectangle

    return Rectangle(*args, **kwargs)


def _save_figure(fig, path):
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=path.suffix)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        Path(tmp).unlink(missing_ok=True)


def plot_confusion_matrix(
    matrix, labels, path, title=None, highlight_pairs=None
):
    """Save a confusion matrix (row-normalised colours, counts) as PNG.

    Arguments
    ---------
    matrix : array-like ``[n, n]``
    labels : list of str
    path : str or pathlib.Path
    title : str, optional
    highlight_pairs : list of pairs, optional
        Their two off-diagonal cells are outlined in red.

    Example
    -------
    >>> path = getfixture("tmpdir") + "/cm.png"
    >>> plot_confusion_matrix([[3, 1], [0, 4]], ["a", "b"], path,
    ...                       highlight_pairs=[["a", "b"]])
    >>> open(path, "rb").read(4)
    b'\\x89PNG'
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    _draw_confusion(ax, matrix, labels, title, highlight_pairs)
    _save_figure(fig, path)


def plot_confusion_matrices(matrices, labels, path, highlight_pairs=None):
    """Save several confusion matrices side by side as one PNG.

    Arguments
    ---------
    matrices : dict of str -> array-like
        Panel title -> confusion matrix, in display order.
    labels : list of str
    path : str or pathlib.Path
    highlight_pairs : dict of str -> list of pairs, optional
        Pairs outlined in each panel (a specialist's target pair, say).

    Example
    -------
    >>> path = getfixture("tmpdir") + "/cms.png"
    >>> plot_confusion_matrices(
    ...     {"baseline": [[3, 1], [2, 2]], "specialist": [[4, 0], [1, 3]]},
    ...     ["a", "b"], path, highlight_pairs={"specialist": [["a", "b"]]})
    >>> open(path, "rb").read(4)
    b'\\x89PNG'
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    highlight_pairs = highlight_pairs or {}
    fig, axes = plt.subplots(
        1, len(matrices), figsize=(4.5 * len(matrices), 4.8), squeeze=False
    )
    for ax, (name, matrix) in zip(axes[0], matrices.items()):
        _draw_confusion(ax, matrix, labels, name, highlight_pairs.get(name))
    fig.tight_layout()
    _save_figure(fig, path)
