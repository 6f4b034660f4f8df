"""Evaluation metrics of a scene classifier.

Phase 5 of Jung, Heo, Shim, Yu, "Knowledge Distillation in Acoustic Scene
Classification", IEEE Access 8:166870-166879, 2020: every model is
evaluated by accuracy, class-wise accuracy and confusion matrix (the
errors inside each confusing pair are in :mod:`speechbrain_kd.pairs`),
and its per-clip predictions are kept in a CSV file keyed by clip ID.
"""

import csv
import io

import numpy as np

from speechbrain_kd.files import write_text_atomic

PREDICTION_COLUMNS = ("ID", "target", "prediction")


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


def grouped_accuracy(targets, predictions, groups):
    """Accuracy within each group of clips (per device, per city, ...).

    Arguments
    ---------
    targets, predictions : sequence of int
    groups : sequence of str
        The group of each clip, e.g. its recording device.

    Returns
    -------
    dict
        ``{group: {"accuracy": float, "n_clips": int}}``, groups sorted.

    Example
    -------
    >>> grouped_accuracy([0, 1, 1, 0], [0, 1, 0, 1], ["a", "a", "s1", "b"])
    {'a': {'accuracy': 1.0, 'n_clips': 2}, 'b': {'accuracy': 0.0, \
'n_clips': 1}, 's1': {'accuracy': 0.0, 'n_clips': 1}}
    """
    targets, predictions = list(targets), list(predictions)
    groups = [str(group) for group in groups]
    if not len(targets) == len(predictions) == len(groups):
        raise ValueError(
            f"{len(targets)} targets, {len(predictions)} predictions and "
            f"{len(groups)} groups: one of each per clip"
        )
    hits = {}
    for target, prediction, group in zip(
        targets, predictions, groups, strict=True
    ):
        hits.setdefault(group, []).append(int(target == prediction))
    return {
        group: {"accuracy": sum(h) / len(h), "n_clips": len(h)}
        for group, h in sorted(hits.items())
    }


def write_predictions(path, ids, targets, posteriors, labels):
    """Write per-clip targets, predictions and posteriors, keyed by clip ID.

    Columns: ``ID``, ``target``, ``prediction`` (scene names; the
    prediction is the most probable scene) and one posterior per label.

    Arguments
    ---------
    path : str or pathlib.Path
        The CSV file (``<split>_predictions.csv``), written whole.
    ids : sequence of str
    targets : sequence of int
        True class indices.
    posteriors : array-like ``[clips, classes]``
    labels : sequence of str
        The class names, in index order.

    Example
    -------
    >>> from pathlib import Path
    >>> path = Path(getfixture("tmpdir")) / "test_predictions.csv"
    >>> write_predictions(path, ["c1", "c2"], [0, 1],
    ...                   [[0.9, 0.1], [0.8, 0.2]], ["bus", "park"])
    >>> print(path.read_text().strip())
    ID,target,prediction,bus,park
    c1,bus,bus,0.9,0.1
    c2,park,bus,0.8,0.2
    """
    labels = list(labels)
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow([*PREDICTION_COLUMNS, *labels])
    for clip_id, target, row in zip(ids, targets, posteriors, strict=True):
        row = [float(p) for p in row]
        best = max(range(len(row)), key=row.__getitem__)
        writer.writerow(
            [clip_id, labels[target], labels[best]] + [f"{p:.6g}" for p in row]
        )
    write_text_atomic(path, text.getvalue())


def read_predictions(path):
    """Read a predictions file: ``{clip ID: (target, prediction)}``.

    Arguments
    ---------
    path : str or pathlib.Path
        A file written by :func:`write_predictions`.

    Returns
    -------
    dict
        Scene names, in the file's order of clips.

    Raises
    ------
    ValueError
        A column missing, or a clip listed twice (named with the file).

    Example
    -------
    >>> from pathlib import Path
    >>> path = Path(getfixture("tmpdir")) / "p.csv"
    >>> _ = path.write_text("ID,target,prediction\\nc1,bus,park\\n")
    >>> read_predictions(path)
    {'c1': ('bus', 'park')}
    """
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = sorted(set(PREDICTION_COLUMNS) - set(reader.fieldnames or []))
        if missing:
            raise ValueError(f"{path} has no column {', '.join(missing)}")
        clips = {}
        for row in reader:
            if row["ID"] in clips:
                raise ValueError(f"{path} lists clip {row['ID']} twice")
            clips[row["ID"]] = (row["target"], row["prediction"])
    return clips
