"""Confusing pairs of scenes: ranking, parsing, files and pair errors.

Phase 2 of Jung, Heo, Shim, Yu, "Knowledge Distillation in Acoustic Scene
Classification", IEEE Access 8:166870-166879, 2020: the baseline's
confusion matrix on held-out data is made symmetric (C + C^T), its
off-diagonal pairs are ranked and the top k become the specialists' target
pairs; each model is then judged by the errors inside each target pair.

Ranking rule (:func:`rank_confusing_pairs`): pairs are sorted by their
mutual error count ``C[i, j] + C[j, i]`` (descending); ties go to the pair
with the larger one-way count ``max(C[i, j], C[j, i])`` (a dominant error
direction first); remaining ties follow the positions of the pair's scenes in
``labels``, ``(i, j)`` with ``i < j``, in ascending order. A pair with fewer
than ``min_pair_errors`` mutual errors is not worth a specialist and is left
out. The matrix can be one split's (the validation split) or the sum of the
out-of-fold matrices of k baselines (:func:`pool_confusion`), which ranks
from every training clip; :func:`ranking_source` says which in the file.
"""

import json
from pathlib import Path

import numpy as np

from speechbrain_kd.files import write_json_atomic
from speechbrain_kd.metrics import _square

TIE_BREAK_RULE = (
    "count descending, then max(a_as_b, b_as_a) descending, then the "
    "positions (i, j), i < j, of the pair's scenes in labels ascending"
)


def _count_setting(value, name):
    if value is None or int(value) != value or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    return int(value)


def rank_confusing_pairs(matrix, labels, top_k=None, min_pair_errors=0):
    """Rank the unordered pairs of classes by their mutual errors.

    The count of a pair ``(i, j)``, ``i < j``, is ``C[i, j] + C[j, i]``
    (the symmetric confusion of Jung et al., IEEE Access 2020). Pairs are
    sorted by count, descending. Ties are broken deterministically: first
    by the larger one-way count ``max(C[i, j], C[j, i])`` (a pair with a
    dominant direction of error first), then by the positions of the
    pair's labels in ``labels``, ``(i, j)`` ascending. Each unordered pair
    appears once, named in label order; pairs without errors, or with
    fewer than ``min_pair_errors``, are left out.

    Arguments
    ---------
    matrix : array-like ``[n, n]``
        Confusion matrix (rows true, columns predicted).
    labels : sequence of str
        The ``n`` class names, in matrix order.
    top_k : int, optional
        Keep only the first ``top_k`` pairs (default: all).
    min_pair_errors : int
        The fewest mutual errors (``C[i, j] + C[j, i]``) of a pair kept
        (0: every pair with an error, as before).

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
    >>> rank_confusing_pairs(cm, "xyz", min_pair_errors=5)
    []
    """
    labels = list(labels)
    matrix = _square(matrix, labels)
    if top_k is not None:
        _count_setting(top_k, "top_k")
    min_pair_errors = _count_setting(min_pair_errors, "min_pair_errors")
    keyed = []
    for i in range(len(labels)):
        for j in range(i + 1, len(labels)):
            a_as_b, b_as_a = int(matrix[i, j]), int(matrix[j, i])
            count = a_as_b + b_as_a
            if count and count >= min_pair_errors:
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
        The pairs, in the order given, each named in label order: a pair
        has one name (and one specialist folder) however it was written.

    Raises
    ------
    ValueError
        An unknown scene (named), a pair without two distinct scenes, a
        pair given twice, or no pair at all.

    Example
    -------
    >>> parse_pairs("tram,metro; airport,shopping_mall",
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
        pairs.append(sorted(pair, key=labels.index))
    return pairs


def write_confusing_pairs(
    path,
    pairs,
    labels,
    source=None,
    top_k=None,
    ranked_from=None,
    min_pair_errors=None,
):
    """Write ``confusing_pairs.json``: the top k and the full ranking.

    The file holds ``source``, ``labels``, ``top_k``, the tie-breaking rule,
    ``pairs`` (the first ``top_k`` entries, the specialists' targets) and
    ``ranking`` (all entries), and, when given, ``ranked_from`` (what the
    ranking's confusion matrix counts, :func:`ranking_source`) and
    ``min_pair_errors``. It is written atomically.

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
    ranked_from : str, optional
        The clips the ranking counts, e.g. "validation split, 40 clips".
    min_pair_errors : int, optional
        The floor the ranking applied.

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
    content = {
        "source": None if source is None else str(source),
        "labels": labels,
        "top_k": top_k,
        "tie_break": TIE_BREAK_RULE,
        "pairs": entries[:top_k],
        "ranking": entries,
    }
    if ranked_from is not None:
        content["ranked_from"] = str(ranked_from)
    if min_pair_errors is not None:
        content["min_pair_errors"] = int(min_pair_errors)
    write_json_atomic(path, content)


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


def pool_confusion(results):
    """Sum the confusion matrices of several evaluations of one label set.

    With k-fold baselines, each evaluated on the training clips it did not
    train on, the sum counts the out-of-fold predictions of every training
    clip: a ranking from it sees all of them, not a small validation split.

    Arguments
    ---------
    results : sequence of dict or path
        ``<split>_results.json`` contents (or files): each with ``labels``
        and ``confusion_matrix``.

    Returns
    -------
    matrix : numpy.ndarray
        ``[n, n]``, the sum.
    labels : list of str

    Raises
    ------
    ValueError
        No results, or one whose labels differ from the first's (named by
        its position, or its file).

    Example
    -------
    >>> folds = [{"labels": ["a", "b"], "confusion_matrix": [[3, 1], [0, 4]]},
    ...          {"labels": ["a", "b"], "confusion_matrix": [[2, 2], [1, 3]]}]
    >>> matrix, labels = pool_confusion(folds)
    >>> matrix.tolist(), int(matrix.sum())
    ([[5, 3], [1, 7]], 16)
    >>> pool_confusion(folds + [{"labels": ["b", "a"],
    ...                           "confusion_matrix": [[1, 0], [0, 1]]}])
    Traceback (most recent call last):
    ...
    ValueError: results[2] has labels ['b', 'a'], not ['a', 'b'] ...
    """
    results = list(results)
    if not results:
        raise ValueError("no results to pool")
    total = labels = None
    for k, result in enumerate(results):
        name = f"results[{k}]"
        if not isinstance(result, dict):
            name = str(result)
            with open(result, encoding="utf-8") as f:
                result = json.load(f)
        matrix = _square(result["confusion_matrix"], result["labels"])
        if labels is None:
            total, labels = np.zeros_like(matrix), list(result["labels"])
        elif list(result["labels"]) != labels:
            raise ValueError(
                f"{name} has labels {list(result['labels'])}, not {labels} "
                "as the first: the folds must share one label encoder"
            )
        total = total + matrix
    return total, labels


def ranking_source(matrix, split="valid", folds=None):
    """Say which clips a pair ranking counts, for the log and the file.

    Arguments
    ---------
    matrix : array-like ``[n, n]``
        The confusion matrix ranked (its sum is the number of clips).
    split : str
        The split it comes from (``valid``: the validation split).
    folds : int, optional
        The number of folds whose out-of-fold predictions were summed.

    Returns
    -------
    str

    Example
    -------
    >>> ranking_source([[30, 5], [2, 3]])
    'validation split, 40 clips'
    >>> ranking_source([[300, 50], [20, 30]], folds=5)
    'out-of-fold predictions of 400 training clips (5 folds)'
    """
    clips = int(np.asarray(matrix).sum())
    if folds:
        return (
            f"out-of-fold predictions of {clips} training clips "
            f"({int(folds)} folds)"
        )
    name = {"valid": "validation", "train": "training"}.get(split, split)
    return f"{name} split, {clips} clips"


def accuracy_outside_pair(matrix, labels, pair):
    """Accuracy on the clips whose true scene is not in ``pair``.

    A specialist is kept for its pair accuracy; this says what it does to
    the other scenes (a clip of another scene predicted as one of the
    pair is an error). ``matrix``, ``labels`` and ``pair`` as
    :func:`pair_errors` takes them.

    Returns
    -------
    float or None
        Correct clips over clips outside the pair; None when every clip's
        scene is in the pair.

    Example
    -------
    >>> accuracy_outside_pair([[5, 2, 1], [3, 4, 0], [0, 2, 8]], "abc",
    ...                       ["a", "b"])
    0.8
    >>> accuracy_outside_pair([[5, 2], [3, 4]], "ab", ["a", "b"]) is None
    True
    """
    labels = list(labels)
    matrix = _square(matrix, labels)
    (pair,) = parse_pairs([pair], labels)
    outside = [k for k, label in enumerate(labels) if label not in pair]
    clips = matrix[outside].sum()
    if not clips:
        return None
    return float(np.diag(matrix)[outside].sum() / clips)


def pair_ranking(path):
    """How the specialists' pairs were chosen (``confusing_pairs.json``).

    Example
    -------
    >>> path = Path(getfixture("tmpdir")) / "pairs.json"
    >>> _ = path.write_text(json.dumps({"ranked_from": "validation split, 40 "
    ...     "clips", "min_pair_errors": 3, "pairs": [{"pair": ["a", "b"]}]}))
    >>> pair_ranking(path)
    {'ranked_from': 'validation split, 40 clips', 'min_pair_errors': 3, \
'chosen': [['a', 'b']]}
    """
    ranking = json.loads(Path(path).read_text(encoding="utf-8"))
    return {
        "ranked_from": ranking.get("ranked_from"),
        "min_pair_errors": ranking.get("min_pair_errors"),
        "chosen": [list(entry["pair"]) for entry in ranking["pairs"]],
    }
