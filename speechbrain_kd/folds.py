"""K-fold cross-validation over a TAU-layout data folder: every clip tested.

On a set of a few hundred clips one test split of 130-200 clips moves a
model's accuracy by 5-15 points from seed to seed; testing every clip once,
over K folds, and pooling the predictions is the protocol of ESC-50 and
UrbanSound8K. The folds are grouped by ``identifier`` (the recording
location, or source recording, of ``meta.csv``), so no recording is heard
in training and in testing, and stratified by scene
(scikit-learn's ``StratifiedGroupKFold``, shuffled with a seed).

Fold ``i`` is written as a TAU-layout *view* (:func:`write_fold_views`):
a folder with links to the data folder's audio, its own ``meta.csv`` and
``evaluation_setup/fold1_train.csv`` (the other folds) and
``fold1_evaluate.csv`` (fold ``i``), which the pipeline takes as
``--data_folder`` unchanged; ``dcase2019_prepare.py`` then draws the
validation locations inside the training folds. The folds' summaries are
compared over all clips with :func:`fold_comparisons`.
"""

import json
import os
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from speechbrain_kd.comparisons import PREDICTIONS_FILE, summary_comparisons
from speechbrain_kd.files import write_json_atomic
from speechbrain_kd.metrics import read_predictions
from speechbrain_kd.tau_layout import read_tau_rows, write_tau_lists

FOLDS_FILE = "folds.json"
LISTS = ("fold1_train.csv", "fold1_evaluate.csv")


def read_tau_clips(data_folder):
    """The clips of a TAU-layout folder's ``fold1`` lists, with their meta.

    Arguments
    ---------
    data_folder : str or pathlib.Path
        ``meta.csv`` and ``evaluation_setup/fold1_train.csv`` and
        ``fold1_evaluate.csv`` (tab-separated, with headers).

    Returns
    -------
    list of dict
        ``filename``, ``scene``, ``identifier``, ``device`` and ``split``
        (``"train"`` or ``"evaluate"``: the list it is in) of each clip of
        the two lists, in their order (training list first).

    Raises
    ------
    FileNotFoundError
        A file of the layout is missing (named).
    ValueError
        A clip listed twice or missing from ``meta.csv`` (file and line
        named), or a column missing.

    Example
    -------
    >>> folder = Path(getfixture("tmpdir"))
    >>> _ = write_tau_lists(folder, [
    ...     {"filename": "audio/a.wav", "scene": "park",
    ...      "identifier": "x-1", "split": "train"},
    ...     {"filename": "audio/b.wav", "scene": "bus",
    ...      "identifier": "y-2", "split": "evaluate"}])
    >>> [(c["identifier"], c["split"]) for c in read_tau_clips(folder)]
    [('x-1', 'train'), ('y-2', 'evaluate')]
    """
    folder = Path(data_folder)
    paths = [folder / "meta.csv"] + [
        folder / "evaluation_setup" / name for name in LISTS
    ]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing: --folds needs a TAU-layout data folder "
                "(audio/, meta.csv, evaluation_setup/fold1_*.csv)"
            )
    needed = ["filename", "scene_label", "identifier", "source_label"]
    meta = {row["filename"]: row for _, row in read_tau_rows(paths[0], needed)}
    clips, seen = [], {}
    for path, split in zip(paths[1:], ("train", "evaluate"), strict=True):
        for line, row in read_tau_rows(path, ["filename"]):
            name, where = row["filename"], f"{path}, line {line}"
            if name in seen:
                raise ValueError(f"{where}: {name} is listed again")
            if name not in meta:
                raise ValueError(f"{where}: {name} is not in meta.csv")
            seen[name] = where
            info = meta[name]
            clips.append(
                {
                    "filename": name,
                    "scene": info["scene_label"],
                    "identifier": info["identifier"],
                    "device": info["source_label"],
                    "split": split,
                }
            )
    return clips


def assign_folds(clips, k, seed=0):
    """The test fold (0 to ``k - 1``) of each clip, grouped by location.

    ``StratifiedGroupKFold`` over ``identifier`` groups, stratified by
    scene, shuffled by ``seed``: all the clips of a location fall in one
    fold, and the folds keep the scenes' shares as well as the groups
    allow.

    Arguments
    ---------
    clips : list of dict
        Each with ``scene`` and ``identifier`` (:func:`read_tau_clips`).
    k : int
        The number of folds, at least 2 and at most the number of
        locations.
    seed : int

    Returns
    -------
    list of int

    Example
    -------
    >>> clips = [{"scene": s, "identifier": f"{s}-{k % 3}"}
    ...          for s in ("bus", "park") for k in range(6)]
    >>> folds = assign_folds(clips, 3, seed=1)
    >>> sorted(set(folds)), len(folds)
    ([0, 1, 2], 12)
    >>> all(len({f for f, c in zip(folds, clips) if c["identifier"] == g})
    ...     == 1 for g in {c["identifier"] for c in clips})
    True
    """
    groups = [c["identifier"] for c in clips]
    n_groups = len(set(groups))
    if int(k) != k or not 2 <= k <= n_groups:
        raise ValueError(
            "K must be an int from 2 to the number of recording locations "
            f"(identifier), {n_groups} here; got {k}"
        )
    splitter = StratifiedGroupKFold(
        n_splits=int(k), shuffle=True, random_state=seed
    )
    folds = np.full(len(clips), -1)
    scenes = [c["scene"] for c in clips]
    for fold, (_, test) in enumerate(splitter.split(clips, scenes, groups)):
        folds[test] = fold
    return folds.tolist()


def _link(target, link):
    """``link`` -> ``target``, replacing a link that points elsewhere."""
    if link.is_symlink() and os.readlink(link) == str(target):
        return
    if link.is_symlink():
        link.unlink()
    elif link.exists():
        raise FileExistsError(f"{link} exists and is not a link to {target}")
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)


def write_fold_views(data_folder, out_folder, k, seed=0, training_only=False):
    """Write one TAU-layout view of ``data_folder`` per fold.

    ``<out_folder>/fold<i>/`` (i from 1) links each top-level entry of the
    clips' paths (``audio``) to the data folder's, and holds ``meta.csv``
    and ``evaluation_setup/fold1_train.csv`` (the clips of the other
    folds), ``fold1_evaluate.csv`` and ``fold1_test.csv`` (fold i's).
    ``<out_folder>/folds.json`` records ``k``, ``seed``, the data folder
    and each clip ID's fold (the ID is the file name's stem, as in the
    manifests). Rewriting with the same arguments gives the same files.
    With ``training_only`` the folds split the training list alone and the
    evaluation list's clips are in no view: the views of out-of-fold
    predictions over the training clips, which rank the confusing pairs
    without the test split (:func:`speechbrain_kd.pairs.pool_confusion`).

    Arguments
    ---------
    data_folder : str or pathlib.Path
        A TAU-layout data folder (:func:`read_tau_clips`).
    out_folder : str or pathlib.Path
        Where the views go.
    k : int
        The number of folds.
    seed : int
        Shuffles the grouped folds.
    training_only : bool
        Split the clips of ``fold1_train.csv`` only.

    Returns
    -------
    list of pathlib.Path
        The views, fold 1 first: each a ``--data_folder``.

    Example
    -------
    >>> tmp = Path(getfixture("tmpdir"))
    >>> _ = write_tau_lists(tmp / "data", [
    ...     {"filename": f"audio/{s}{k}.wav", "scene": s,
    ...      "identifier": f"{s}-{k % 4}", "split": "train"}
    ...     for s in ("bus", "park") for k in range(8)])
    >>> views = write_fold_views(tmp / "data", tmp / "folds", 4, seed=0)
    >>> [v.name for v in views]
    ['fold1', 'fold2', 'fold3', 'fold4']
    >>> sorted(p.name for p in views[0].iterdir())
    ['audio', 'evaluation_setup', 'meta.csv']
    >>> fold_of = json.loads((tmp / "folds/folds.json").read_text())["clips"]
    >>> sorted(set(fold_of.values()))
    [1, 2, 3, 4]
    >>> inner = write_fold_views(views[0], tmp / "inner", 2, training_only=True)
    >>> inner_of = json.loads((tmp / "inner/folds.json").read_text())["clips"]
    >>> sorted(inner_of) == sorted(c for c, f in fold_of.items() if f != 1)
    True
    """
    data_folder, out_folder = Path(data_folder), Path(out_folder)
    clips = read_tau_clips(data_folder)
    if training_only:
        clips = [c for c in clips if c["split"] == "train"]
    folds = assign_folds(clips, k, seed)
    tops = sorted({Path(c["filename"]).parts[0] for c in clips})
    views = []
    for fold in range(int(k)):
        view = out_folder / f"fold{fold + 1}"
        for top in tops:
            _link((data_folder / top).absolute(), view / top)
        write_tau_lists(
            view,
            [
                {**c, "split": "evaluate" if f == fold else "train"}
                for c, f in zip(clips, folds, strict=True)
            ],
        )
        views.append(view)
    write_json_atomic(
        out_folder / FOLDS_FILE,
        {
            "data_folder": str(data_folder.absolute()),
            "k": int(k),
            "seed": seed,
            "group_by": "identifier",
            "training_only": bool(training_only),
            "clips": {
                Path(c["filename"]).stem: f + 1
                for c, f in zip(clips, folds, strict=True)
            },
        },
    )
    return views


def fold_comparisons(summaries, folds_file=None, row="baseline"):
    """The paired comparisons of the folds' summaries, over all clips.

    :func:`speechbrain_kd.comparisons.summary_comparisons` with one
    stratum per fold (clips resampled within folds, each fold's models
    matched on its clips, a comparison refused with its reason where two
    models of a fold were tested on other clips), after checking that the
    folds tested every clip once: ``row``'s test predictions of two folds
    share no clip and, with ``folds_file``, each fold tested exactly its
    clips.

    Arguments
    ---------
    summaries : dict
        ``{fold key: pipeline summary}`` (keys as ``summary_comparisons``
        takes seeds: fold numbers, or ``(seed, fold)`` when seeds and
        folds combine; the same fold may appear once per seed).
    folds_file : str or pathlib.Path, optional
        The ``folds.json`` of :func:`write_fold_views`; fold keys then
        end with the fold number (an int or a tuple's last item).
    row : str
        The summary row whose predictions show each fold's test clips.

    Returns
    -------
    dict
        As ``summary_comparisons`` returns it.

    Raises
    ------
    ValueError
        A clip tested in two folds of a seed, a fold that did not test its
        clips (clips named), or a fold without a summary.

    Example
    -------
    >>> from speechbrain_kd.metrics import write_predictions
    >>> tmp = Path(getfixture("tmpdir"))
    >>> def run(name, ids, hits):
    ...     probs = [[0.9, 0.1] if hit else [0.1, 0.9] for hit in hits]
    ...     write_predictions(tmp / name / "test_predictions.csv",
    ...                       ids, [0] * len(ids), probs, ["a", "b"])
    ...     return {"output_folder": str(tmp / name)}
    >>> summaries = {
    ...     fold: {"reference": run(f"r{fold}", ids, [0, 1] * 10),
    ...            "baseline": run(f"b{fold}", ids, [1] * 20)}
    ...     for fold, ids in ((1, [f"c{k}" for k in range(20)]),
    ...                       (2, [f"c{k}" for k in range(20, 40)]))}
    >>> entry = fold_comparisons(summaries)["baseline_vs_reference"]
    >>> entry["n_clips"], entry["seeds"], entry["difference"]
    (40, [1, 2], 50.0)
    >>> fold_comparisons({1: summaries[1], 2: summaries[1]})
    Traceback (most recent call last):
    ...
    ValueError: clip c0 is tested in fold 1 and fold 2: ...
    """
    expected = None
    if folds_file is not None:
        with open(folds_file, encoding="utf-8") as f:
            expected = json.load(f)["clips"]
    seen = {}
    for key in sorted(summaries):
        seed, fold = (
            (key[:-1], key[-1]) if isinstance(key, tuple) else ((), key)
        )
        path = Path(summaries[key][row]["output_folder"]) / PREDICTIONS_FILE
        tested = read_predictions(path)
        for clip in tested:
            if (seed, clip) in seen:
                raise ValueError(
                    f"clip {clip} is tested in fold {seen[seed, clip]} and "
                    f"fold {fold}: the folds must not share test clips"
                )
            seen[seed, clip] = fold
        if expected is not None:
            wanted = {c for c, f in expected.items() if f == fold}
            wrong = sorted(set(tested) ^ wanted)
            if wrong:
                raise ValueError(
                    f"{path}: fold {fold} should test the {len(wanted)} "
                    f"clips {folds_file} gives it; {len(wrong)} differ "
                    f"({', '.join(wrong[:5])})"
                )
    if expected is not None:
        folds = set(expected.values())
        for seed in {seed for seed, _ in seen}:
            missing = folds - {f for (s, _), f in seen.items() if s == seed}
            if missing:
                raise ValueError(
                    f"folds {sorted(missing)} of {folds_file} have no summary"
                    + (f" for seed {seed[0]}" if seed else "")
                    + ": their clips are untested"
                )
    return summary_comparisons(summaries)


def pooled_accuracy(summaries, row):
    """A summary row's accuracy over the pooled test clips of the folds.

    Arguments
    ---------
    summaries : dict
        ``{fold key: pipeline summary}``, as :func:`fold_comparisons`
        takes them (check them with it first).
    row : str
        The row (``baseline``, ``student`` ...), each fold's with an
        ``output_folder`` holding its ``test_predictions.csv``.

    Returns
    -------
    dict
        ``accuracy`` (correct clips over all clips), ``n_clips`` and
        ``folds`` (the keys pooled: the folds whose summary has the row).

    Example
    -------
    >>> from speechbrain_kd.metrics import write_predictions
    >>> tmp = Path(getfixture("tmpdir"))
    >>> # fold 1 gets c1 right and c2 wrong, fold 2 gets c3 right
    >>> for fold, ids, guesses in ((1, ["c1", "c2"], [[.9, .1], [.2, .8]]),
    ...                            (2, ["c3"], [[.7, .3]])):
    ...     write_predictions(tmp / f"b{fold}" / "test_predictions.csv", ids,
    ...                       [0] * len(ids), guesses, ["a", "b"])
    >>> pooled_accuracy({fold: {"baseline": {"output_folder": tmp / f"b{fold}"}}
    ...                  for fold in (1, 2)}, "baseline")
    {'accuracy': 0.6666666666666666, 'n_clips': 3, 'folds': [1, 2]}
    """
    correct = clips = 0
    pooled = [key for key in sorted(summaries) if row in summaries[key]]
    if not pooled:
        raise ValueError(f"no fold summary has the row {row!r}")
    for key in pooled:
        folder = Path(summaries[key][row]["output_folder"])
        tested = read_predictions(folder / PREDICTIONS_FILE)
        correct += sum(target == guess for target, guess in tested.values())
        clips += len(tested)
    return {"accuracy": correct / clips, "n_clips": clips, "folds": pooled}
