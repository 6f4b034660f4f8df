"""Confusion analysis, confusing pairs, ensembles, reports and plots.

Phases 2 and 5 of Jung, Heo, Shim, Yu, "Knowledge Distillation in Acoustic
Scene Classification", IEEE Access 8:166870-166879, 2020: the baseline's
confusion matrix on held-out data is made symmetric (C + C^T), its
off-diagonal pairs are ranked and the top k become the specialists' target
pairs; every model is then evaluated by accuracy, class-wise accuracy,
confusion matrix and the errors inside each target pair, and the ensemble of
the baseline and the specialists averages their posteriors.

Ranking rule (:func:`rank_confusing_pairs`): pairs are sorted by their
mutual error count ``C[i, j] + C[j, i]`` (descending); ties go to the pair
with the larger one-way count ``max(C[i, j], C[j, i])`` (a dominant error
direction first); remaining ties follow the positions of the pair's scenes in
``labels``, ``(i, j)`` with ``i < j``, in ascending order.
"""

import json
import os
import tempfile
from pathlib import Path

import numpy as np

TIE_BREAK_RULE = (
    "count descending, then max(a_as_b, b_as_a) descending, then the "
    "positions (i, j), i < j, of the pair's scenes in labels ascending"
)


def write_json_atomic(path, obj):
    """Write ``obj`` as JSON to ``path`` whole or not at all.

    The JSON goes to a temporary file in the same folder, which then
    replaces ``path`` (``os.replace``), so a reader never sees half a file.

    Arguments
    ---------
    path : str or pathlib.Path
        Where to write; missing parent folders are created.
    obj : object
        Anything ``json.dump`` accepts.

    Example
    -------
    >>> path = getfixture("tmpdir") + "/x.json"
    >>> write_json_atomic(path, {"a": 1})
    >>> open(path).read()
    '{\\n  "a": 1\\n}'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _class_indices(values, n_classes, name):
    """``values`` as a 1-D int64 array of class indices, checked."""
    array = np.asarray(values)
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        if not (
            np.issubdtype(array.dtype, np.floating)
            and np.all(np.isfinite(array))
            and np.all(array == np.round(array))
        ):
            raise ValueError(
                f"{name} must hold class indices (integers), got "
                f"dtype {array.dtype}"
            )
    array = array.astype(np.int64)
    bad = (array < 0) | (array >= n_classes)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name}[{pos}] = {array[pos]} is not a class index in "
            f"0..{n_classes - 1}"
        )
    return array


def _square(matrix, labels=None):
    """``matrix`` as a square integer-or-float array, checked."""
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(
            f"a confusion matrix must be square, got shape {matrix.shape}"
        )
    if labels is not None and matrix.shape[0] != len(labels):
        raise ValueError(
            f"confusion matrix {matrix.shape} does not match the "
            f"{len(labels)} labels {list(labels)}"
        )
    return matrix


def confusion_matrix(targets, predictions, n_classes):
    """Counts ``[n, n]``: row = true class, column = predicted class.

    Arguments
    ---------
    targets : sequence of int
        True class index of every clip.
    predictions : sequence of int
        Predicted class index of every clip.
    n_classes : int
        Number of classes ``n``.

    Returns
    -------
    numpy.ndarray
        int64 ``[n, n]``.

    Example
    -------
    >>> confusion_matrix([0, 0, 1, 2], [0, 1, 1, 2], 3)
    array([[1, 1, 0],
           [0, 1, 0],
           [0, 0, 1]])
    >>> confusion_matrix([0, 3], [0, 1], 3)
    Traceback (most recent call last):
    ...
    ValueError: targets[1] = 3 is not a class index in 0..2
    """
    if int(n_classes) != n_classes or n_classes < 1:
        raise ValueError(f"n_classes must be a positive int, got {n_classes}")
    n_classes = int(n_classes)
    targets = _class_indices(targets, n_classes, "targets")
    predictions = _class_indices(predictions, n_classes, "predictions")
    if len(targets) != len(predictions):
        raise ValueError(
            f"{len(targets)} targets but {len(predictions)} predictions"
        )
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (targets, predictions), 1)
    return matrix


def symmetric_confusion(matrix):
    """``C + C^T`` with a zero diagonal: errors between two classes.

    Arguments
    ---------
    matrix : array-like ``[n, n]``
        Confusion matrix (rows true, columns predicted).

    Returns
    -------
    numpy.ndarray
        ``[n, n]``, symmetric, zero diagonal.

    Example
    -------
    >>> symmetric_confusion(np.array([[5, 2], [3, 4]]))
    array([[0, 5],
           [5, 0]])
    """
    matrix = _square(matrix)
    sym = matrix + matrix.T
    np.fill_diagonal(sym, 0)
    return sym


def rank_confusing_pairs(matrix, labels, top_k=None):
    """Rank the unordered pairs of classes by their mutual errors.

    The count of a pair ``(i, j)``, ``i < j``, is ``C[i, j] + C[j, i]``
    (the symmetric confusion of Jung et al., IEEE Access 2020). Pairs are
    sorted by count, descending. Ties are broken deterministically: first
    by the larger one-way count ``max(C[i, j], C[j, i])`` (a pair with a
    dominant direction of error first), then by the positions of the
    pair's labels in ``labels``, ``(i, j)`` ascending. Each unordered pair
    appears once, named in label order; pairs without errors are left out.

    Arguments
    ---------
    matrix : array-like ``[n, n]``
        Confusion matrix (rows true, columns predicted).
    labels : sequence of str
        The ``n`` class names, in matrix order.
    top_k : int, optional
        Keep only the first ``top_k`` pairs (default: all).

    Returns
    -------
    list of dict
        ``{"pair": [a, b], "count": int, "a_as_b": int, "b_as_a": int}``
        where ``a_as_b`` counts clips of ``a`` predicted as ``b``.

    Example
    -------
    >>> cm = [[9, 3, 0], [1, 8, 2], [0, 2, 7]]
    >>> [(p["pair"], p["count"]) for p in rank_confusing_pairs(cm, "xyz")]
    [(['x', 'y'], 4), (['y', 'z'], 4)]
    """
    labels = list(labels)
    matrix = _square(matrix, labels)
    if top_k is not None and (int(top_k) != top_k or top_k < 0):
        raise ValueError(f"top_k must be an int >= 0, got {top_k}")
    keyed = []
    for i in range(len(labels)):
        for j in range(i + 1, len(labels)):
            a_as_b, b_as_a = int(matrix[i, j]), int(matrix[j, i])
            count = a_as_b + b_as_a
            if count:
                key = (-count, -max(a_as_b, b_as_a), i, j)
                entry = {
                    "pair": [labels[i], labels[j]],
                    "count": count,
                    "a_as_b": a_as_b,
                    "b_as_a": b_as_a,
                }
                keyed.append((key, entry))
    keyed.sort(key=lambda item: item[0])
    ranking = [entry for _, entry in keyed]
    return ranking if top_k is None else ranking[: int(top_k)]


def _split_pair(text):
    return [part.strip() for part in text.split(",")]


def parse_pairs(spec, labels):
    """Read pairs given by hand: ``"a,b;c,d"`` or ``[[a, b], [c, d]]``.

    Arguments
    ---------
    spec : str or sequence
        ``"a,b;c,d"``; or a list whose items are pairs (``[a, b]``),
        ``"a,b"`` strings or dicts with a ``"pair"`` entry.
    labels : sequence of str
        The known scenes.

    Returns
    -------
    list of list of str
        The pairs, in the order given.

    Raises
    ------
    ValueError
        An unknown scene (named), a pair without two distinct scenes, a
        pair given twice, or no pair at all.

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
    labels = list(labels)
    if isinstance(spec, str):
        items = [chunk for chunk in spec.split(";") if chunk.strip()]
    else:
        items = list(spec)
    if not items:
        raise ValueError(f"no pair given in {spec!r}")
    pairs, seen = [], set()
    for item in items:
        if isinstance(item, dict):
            if "pair" not in item:
                raise ValueError(f"entry {item} has no 'pair'")
            item = item["pair"]
        pair = _split_pair(item) if isinstance(item, str) else list(item)
        if len(pair) != 2 or pair[0] == pair[1]:
            raise ValueError(
                f"a pair needs two different scenes, got {item!r} (write "
                "pairs as 'a,b;c,d' or [[a, b], [c, d]])"
            )
        for label in pair:
            if label not in labels:
                raise ValueError(
                    f"unknown scene {label!r} in pair {pair}; known: {labels}"
                )
        key = frozenset(pair)
        if key in seen:
            raise ValueError(f"pair {pair} is given twice")
        seen.add(key)
        pairs.append(pair)
    return pairs


def write_confusing_pairs(path, pairs, labels, source=None, top_k=None):
    """Write ``confusing_pairs.json``: the top k and the full ranking.

    The file holds ``source``, ``labels``, ``top_k``, the tie-breaking rule,
    ``pairs`` (the first ``top_k`` entries, the specialists' targets) and
    ``ranking`` (all entries). It is written atomically.

    Arguments
    ---------
    path : str or pathlib.Path
        Output JSON file.
    pairs : list
        The ranking from :func:`rank_confusing_pairs`, or pairs given by
        hand (``[a, b]`` lists or dicts with a ``"pair"`` entry).
    labels : sequence of str
        The scenes, in the order of the confusion matrix.
    source : str, optional
        Where the confusion matrix came from (a results file, say).
    top_k : int, optional
        How many of ``pairs`` are targets (default: all).

    Example
    -------
    >>> path = getfixture("tmpdir") + "/pairs.json"
    >>> ranking = rank_confusing_pairs([[5, 2], [1, 6]], ["a", "b"])
    >>> write_confusing_pairs(path, ranking, ["a", "b"], "demo", 1)
    >>> read_confusing_pairs(path)[0]["pair"]
    ['a', 'b']
    """
    labels = list(labels)
    entries = [
        dict(p) if isinstance(p, dict) else {"pair": list(p)} for p in pairs
    ]
    if entries:
        checked = parse_pairs(entries, labels)
        for entry, pair in zip(entries, checked, strict=True):
            entry["pair"] = pair
    if top_k is None:
        top_k = len(entries)
    if int(top_k) != top_k or top_k < 0:
        raise ValueError(f"top_k must be an int >= 0, got {top_k}")
    top_k = int(top_k)
    write_json_atomic(
        path,
        {
            "source": None if source is None else str(source),
            "labels": labels,
            "top_k": top_k,
            "tie_break": TIE_BREAK_RULE,
            "pairs": entries[:top_k],
            "ranking": entries,
        },
    )


def read_confusing_pairs(path, labels=None):
    """Read the top-k pairs of ``confusing_pairs.json``, checked.

    Arguments
    ---------
    path : str or pathlib.Path
        A file written by :func:`write_confusing_pairs`.
    labels : sequence of str, optional
        The scenes every pair must come from (default: the file's own
        ``labels``).

    Returns
    -------
    list of dict
        The target entries, each with at least ``"pair"`` (two distinct,
        known scenes).

    Raises
    ------
    FileNotFoundError
        The file is missing.
    ValueError
        The file is not valid JSON, has no ``pairs`` list, or a pair names
        an unknown scene or twice the same one (the file is named).

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
    try:
        with open(path, encoding="utf-8") as f:
            content = json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(content, dict) or not isinstance(
        content.get("pairs"), list
    ):
        raise ValueError(f"{path} has no 'pairs' list")
    pairs = content["pairs"]
    for k, entry in enumerate(pairs):
        if not isinstance(entry, dict) or "pair" not in entry:
            raise ValueError(f"{path}: pairs[{k}] has no 'pair': {entry!r}")
    known = labels if labels is not None else content.get("labels")
    if known is None:
        raise ValueError(f"{path} has no 'labels' and none were given")
    if pairs:
        try:
            parse_pairs(pairs, known)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from error
    return pairs


def pair_errors(matrix, labels, pair):
    """Clips of one scene of ``pair`` classified as the other, both ways.

    Arguments
    ---------
    matrix : array-like ``[n, n]``
        Confusion matrix (rows true, columns predicted).
    labels : sequence of str
        The scenes, in matrix order.
    pair : sequence of two str

    Returns
    -------
    int
        ``C[a, b] + C[b, a]``.

    Example
    -------
    >>> pair_errors([[5, 2, 1], [3, 4, 0], [0, 0, 9]], "abc", ["a", "b"])
    5
    """
    labels = list(labels)
    matrix = _square(matrix, labels)
    (pair,) = parse_pairs([pair], labels)
    i, j = (labels.index(label) for label in pair)
    return int(matrix[i, j] + matrix[j, i])


def classification_report(targets, predictions, labels):
    """Accuracy, class-wise accuracy and confusion matrix as plain JSON.

    Arguments
    ---------
    targets : sequence of int
        True class indices.
    predictions : sequence of int
        Predicted class indices.
    labels : sequence of str
        The class names, in index order.

    Returns
    -------
    dict
        ``accuracy`` (fraction), ``classwise_accuracy`` (label -> fraction,
        ``None`` for a class without clips), ``confusion_matrix`` (list of
        lists, rows true), ``labels``, ``n_clips``.

    Raises
    ------
    ValueError
        No clip, or a class index out of range.

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
    if not n_clips:
        raise ValueError("no clip to evaluate: targets is empty")
    return {
        "accuracy": float(np.trace(matrix) / n_clips),
        "classwise_accuracy": {
            label: float(matrix[k, k] / totals[k]) if totals[k] else None
            for k, label in enumerate(labels)
        },
        "confusion_matrix": matrix.tolist(),
        "labels": labels,
        "n_clips": n_clips,
    }


def _as_model_stack(scores):
    """A list of ``[B, C]`` arrays/tensors or a ``[K, B, C]`` array."""
    if hasattr(scores, "detach"):
        scores = scores.detach().cpu().numpy()
    if not isinstance(scores, np.ndarray):
        scores = [
            s.detach().cpu().numpy() if hasattr(s, "detach") else s
            for s in scores
        ]
        shapes = {np.shape(s) for s in scores}
        if len(shapes) > 1:
            raise ValueError(
                f"the models' outputs have different shapes {sorted(shapes)}"
            )
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 3 or scores.shape[0] == 0:
        raise ValueError(
            "expected K >= 1 models' outputs [K, batch, classes], got "
            f"shape {scores.shape}"
        )
    return scores


def ensemble_posteriors(scores, weights=None, kind="auto"):
    """Weighted average of ``K`` models' posteriors.

    The ensemble of Jung et al. (IEEE Access 2020) averages the posteriors
    of the baseline and the specialists.

    Arguments
    ---------
    scores : array-like ``[K, B, C]`` or list of ``K`` arrays ``[B, C]``
        Probabilities or log-probabilities (numpy arrays or tensors).
    weights : sequence of float, optional
        One non-negative weight per model; normalised to sum 1. Default:
        equal weights.
    kind : str
        ``"probs"``, ``"log_probs"`` or ``"auto"``: probabilities when every
        value is in [0, 1] and rows sum to 1, log-probabilities when every
        value is <= 0 and rows of ``exp`` sum to 1 (the two cannot both
        hold); anything else is an error.

    Returns
    -------
    numpy.ndarray
        ``[B, C]`` averaged probabilities.

    Example
    -------
    >>> p = np.array([[[0.9, 0.1]], [[0.3, 0.7]]])
    >>> ensemble_posteriors(p, weights=[3, 1])
    array([[0.75, 0.25]])
    >>> ensemble_posteriors(list(np.log(p))).round(3)
    array([[0.6, 0.4]])
    """
    scores = _as_model_stack(scores)
    k = scores.shape[0]
    if np.isnan(scores).any():
        raise ValueError("the models' outputs contain NaN")
    if kind not in ("auto", "probs", "log_probs"):
        raise ValueError(
            f"kind must be 'auto', 'probs' or 'log_probs', got {kind!r}"
        )
    if kind == "auto":
        looks_probs = (
            scores.min() >= 0
            and scores.max() <= 1
            and np.allclose(scores.sum(-1), 1, atol=1e-3)
        )
        looks_log = scores.max() <= 0 and np.allclose(
            np.exp(scores).sum(-1), 1, atol=1e-3
        )
        if not (looks_probs or looks_log):
            raise ValueError(
                "the models' outputs are neither probabilities nor "
                "log-probabilities (rows must sum to 1): apply softmax or "
                "log_softmax to logits first"
            )
        kind = "probs" if looks_probs else "log_probs"
    probs = np.exp(scores) if kind == "log_probs" else scores
    if weights is None:
        weights = np.ones(k)
    weights = np.asarray(weights, dtype=np.float64).reshape(-1)
    if weights.shape != (k,):
        raise ValueError(f"{len(weights)} weights given for {k} models")
    if (weights < 0).any() or not weights.sum() > 0:
        raise ValueError(
            f"weights must be >= 0 with a positive sum, got {weights}"
        )
    return np.tensordot(weights / weights.sum(), probs, axes=1)


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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix or ".png"
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.stem}.", suffix=suffix
    )
    os.close(fd)
    try:
        fig.savefig(tmp, format=suffix[1:], dpi=120, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


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
