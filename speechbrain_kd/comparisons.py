"""Paired comparisons of two models tested on the same clips.

Each claim of Jung et al. (IEEE Access 2020) that a results table shows
(the baseline beats the linear reference, the ensemble the baseline, the
student the ensemble; each specialist makes fewer errors inside its pair
than the baseline) compares two models on the same test clips, so the
comparison is paired: each clip gives a score of 1 or 0 to each model
(right or wrong; for a specialist, outside or inside its pair's
confusion), and only the clips where the two disagree carry evidence.

- ``difference``: the mean over clips of the first model's score minus the
  second's, in percentage points (the difference in accuracy), pooled
  over seeds: each seed's run tests every clip once.
- ``ci95``: a percentile bootstrap interval (Efron and Tibshirani, "An
  Introduction to the Bootstrap", 1993, ch. 13) that resamples clips within
  each seed (``scipy.stats.bootstrap`` with one sample per seed), from a
  fixed generator seed, so the same predictions give the same interval.
  Below :data:`MIN_CLIPS` clips (or 2 in a seed) there is no interval, and
  ``note`` says why: the percentile interval of a mean of a few 0/1
  differences is too coarse to trust, a rule of thumb.
- ``p_value``: the exact McNemar test (McNemar, Psychometrika 12:153-157,
  1947): with no difference between the models, the clips that only one
  of them gets right split 50/50 between them (two-sided
  ``scipy.stats.binomtest``; 1 when there are none).
- ``holds``: the interval lies above zero and the exact test rejects "no
  difference" at the 5 % level (:data:`ALPHA`). The percentile interval
  alone is a little narrow when few clips disagree (on 200 clips, 17
  against 7 discordant clips give an interval of +0.5 to +10 points but
  p = 0.064), so a claim needs both.

The seeds share their test clips, and resampling clips within seeds
measures how the result would move with other clips for these trainings;
the spread between trainings enters only through the seeds that were run.
"""

import numpy as np
from scipy import stats

from speechbrain_kd.metrics import read_predictions

MIN_CLIPS = 30
ALPHA = 0.05
RESAMPLES = 10_000
BOOTSTRAP_SEED = 2019  # fixed: the same interval on every run
PREDICTIONS_FILE = "test_predictions.csv"
LEGEND = (
    "difference: first minus second in accuracy points, pooled over {runs} "
    "(a specialist: the baseline's errors in its pair minus its own, in "
    "points of the pair's clips); holds: the 95 % interval (bootstrap over "
    "clips within {runs}) lies above zero and p < 0.05."
)

# The paper's claims between two rows of a pipeline summary, first > second.
CLAIMS = (
    ("baseline", "reference"),
    ("ensemble", "baseline"),
    ("student", "ensemble"),
    ("student", "control"),
    ("student", "kd_baseline"),
)


class ClipsDiffer(ValueError):
    """Two models were not tested on the same clips with the same labels.

    Example
    -------
    >>> isinstance(ClipsDiffer("c1 only in baseline"), ValueError)
    True
    """


def matched_clips(first, second, names=("first", "second")):
    """The clips two prediction sets share, refused unless they are equal.

    Arguments
    ---------
    first, second : dict
        ``{clip ID: (target, prediction)}``
        (:func:`~speechbrain_kd.metrics.read_predictions`).
    names : tuple of str
        How the two are named in an error.

    Returns
    -------
    list of str
        The clip IDs, in the order of ``first``.

    Raises
    ------
    ClipsDiffer
        Naming up to five clips of each kind: only in one of them, or with
        another target.

    Example
    -------
    >>> matched_clips({"c1": ("bus", "bus")}, {"c1": ("bus", "park")})
    ['c1']
    >>> matched_clips({"c1": ("bus", "bus"), "c2": ("bus", "bus")},
    ...               {"c1": ("park", "park")}, ("baseline", "student"))
    Traceback (most recent call last):
    ...
    speechbrain_kd.comparisons.ClipsDiffer: baseline and student were not \
tested on the same clips: 1 only in baseline (c2); 1 with another target \
(c1)
    """

    def some(clips):
        shown = ", ".join(clips[:5])
        return shown + (f" and {len(clips) - 5} more" if len(clips) > 5 else "")

    problems = [
        f"{len(only)} only in {name} ({some(only)})"
        for only, name in (
            ([c for c in first if c not in second], names[0]),
            ([c for c in second if c not in first], names[1]),
        )
        if only
    ]
    relabelled = [
        c for c in first if c in second and first[c][0] != second[c][0]
    ]
    if relabelled:
        problems.append(
            f"{len(relabelled)} with another target ({some(relabelled)})"
        )
    if problems:
        raise ClipsDiffer(
            f"{names[0]} and {names[1]} were not tested on the same clips: "
            + "; ".join(problems)
        )
    return list(first)


def paired_difference(scores, min_clips=MIN_CLIPS, resamples=RESAMPLES):
    """Difference, bootstrap interval and McNemar p-value of paired scores.

    Arguments
    ---------
    scores : dict
        ``{seed: (first, second)}``: per-clip scores (0 or 1) of the two
        models on the same clips, in the same order.
    min_clips : int
        Fewer clips in all (or fewer than 2 in a seed): no interval.
    resamples : int
        Bootstrap resamples.

    Returns
    -------
    dict
        ``difference`` (points, first minus second), ``ci95`` (``[lo,
        hi]`` in points, or None with a ``note``), ``p_value``,
        ``n_clips``, ``seeds``, ``holds``, and the discordant clips
        ``first_only`` (scored 1 by the first model alone) and
        ``second_only``.

    Example
    -------
    >>> same = paired_difference({1: ([1, 0] * 20, [1, 0] * 20)})
    >>> same["difference"], same["ci95"], same["p_value"], same["holds"]
    (0.0, [0.0, 0.0], 1.0, False)
    >>> first = [1] * 17 + [0] * 7 + [1] * 120 + [0] * 56
    >>> second = [0] * 17 + [1] * 7 + [1] * 120 + [0] * 56
    >>> close = paired_difference({1: (first, second)})
    >>> close["difference"], close["ci95"], round(close["p_value"], 3)
    (5.0, [0.5, 10.0], 0.064)
    >>> close["holds"]  # the interval is above zero, the test not
    False
    >>> few = paired_difference({1: ([1, 1, 1], [0, 0, 0])})
    >>> few["difference"], few["ci95"], few["note"]
    (100.0, None, 'too few clips for a bootstrap interval: 3 < 30')
    """
    seeds = sorted(scores)
    differences = []
    for seed in seeds:
        first, second = (np.asarray(s, dtype=float) for s in scores[seed])
        if first.shape != second.shape or first.ndim != 1:
            raise ValueError(
                f"seed {seed}: {first.shape} and {second.shape} scores; "
                "give one score per clip to each model"
            )
        differences.append(first - second)
    pooled = np.concatenate(differences)
    if not pooled.size:
        raise ValueError("no clip to compare")
    first_only = int((pooled > 0).sum())
    second_only = int((pooled < 0).sum())
    discordant = first_only + second_only
    p_value = (
        float(stats.binomtest(first_only, discordant, 0.5).pvalue)
        if discordant
        else 1.0
    )
    result = {
        "difference": 100 * float(pooled.mean()),
        "ci95": None,
        "p_value": p_value,
        "n_clips": int(pooled.size),
        "seeds": seeds,
        "holds": False,
        "first_only": first_only,
        "second_only": second_only,
    }
    smallest = min(len(d) for d in differences)
    if pooled.size < min_clips or smallest < 2:
        result["note"] = "too few clips for a bootstrap interval: " + (
            f"{pooled.size} < {min_clips}"
            if pooled.size < min_clips
            else f"{smallest} in a seed"
        )
        return result

    def pooled_mean(*samples, axis=-1):
        total = sum(sample.shape[axis] for sample in samples)
        return sum(sample.sum(axis=axis) for sample in samples) / total

    # One sample per seed, each resampled on its own: within seeds.
    interval = stats.bootstrap(
        differences,
        pooled_mean,
        vectorized=True,
        paired=False,
        n_resamples=resamples,
        method="percentile",
        rng=np.random.default_rng(BOOTSTRAP_SEED),
    ).confidence_interval
    low, high = 100 * float(interval.low), 100 * float(interval.high)
    result.update(ci95=[low, high], holds=low > 0 and p_value < ALPHA)
    return result


def compare_predictions(first, second, names=("first", "second"), pairs=None):
    """Compare two models from their per-clip predictions, pooled over seeds.

    Arguments
    ---------
    first, second : dict
        ``{seed: predictions}``, each ``{clip ID: (target, prediction)}``.
    names : tuple of str
        The two models, named in a refusal.
    pairs : dict, optional
        ``{seed: [a, b]}``: compare on the clips of scenes ``a`` and ``b``
        only, each model scoring 1 where it avoids the pair's confusion (a
        clip of ``a`` taken for ``b`` or the reverse); the difference is
        then the second's pair errors minus the first's, in points of the
        pair's clips. Adds ``pairs`` and ``errors`` (the two totals).

    Returns
    -------
    dict
        As :func:`paired_difference`.

    Raises
    ------
    ClipsDiffer
        When a seed's two runs were tested on other clips.

    Example
    -------
    >>> truth = {f"c{k}": "ab"[k % 2] for k in range(40)}
    >>> right = {c: (t, t) for c, t in truth.items()}
    >>> swapped = {c: (t, "ba"["ab".index(t)]) for c, t in truth.items()}
    >>> result = compare_predictions({1: right}, {1: swapped},
    ...                              pairs={1: ["a", "b"]})
    >>> result["difference"], result["errors"], result["ci95"]
    (100.0, [0, 40], [100.0, 100.0])
    """
    scores = {}
    for seed in sorted(first):
        clips = matched_clips(first[seed], second[seed], names)
        if pairs is None:
            scores[seed] = tuple(
                [int(run[c][0] == run[c][1]) for c in clips]
                for run in (first[seed], second[seed])
            )
            continue
        a, b = pairs[seed]
        swap = {a: b, b: a}
        clips = [c for c in clips if first[seed][c][0] in swap]
        scores[seed] = tuple(
            [int(run[c][1] != swap[run[c][0]]) for c in clips]
            for run in (first[seed], second[seed])
        )
    result = paired_difference(scores)
    if pairs is not None:
        result["pairs"] = ["/".join(pairs[seed]) for seed in sorted(first)]
        result["errors"] = [
            sum(len(s) - sum(s) for s, _ in scores.values()),
            sum(len(s) - sum(s) for _, s in scores.values()),
        ]
    return result


def summary_comparisons(summaries, claims=CLAIMS):
    """Every claim between the rows of pipeline summaries, pooled over seeds.

    A claim ``(first, second)`` is keyed ``<first>_vs_<second>`` and pools
    the seeds whose summaries have both rows; claims without such a seed
    are left out. Each specialist rank is keyed
    ``specialist_<rank>_vs_baseline_pair_errors``, compared with the
    baseline on its own pair's clips (the pair can differ between seeds).
    A comparison that cannot be made is ``{"refused": reason, "seeds":
    [...]}``: runs tested on other clips, or a predictions file missing.

    Arguments
    ---------
    summaries : dict
        ``{seed: summary}``, each row ``{"output_folder": ...}`` holding
        the ``test_predictions.csv`` of its model, and ``specialists`` a
        list of such rows with their ``pair``.
    claims : sequence of (str, str)

    Returns
    -------
    dict

    Example
    -------
    >>> from pathlib import Path
    >>> from speechbrain_kd.metrics import write_predictions
    >>> folder = Path(getfixture("tmpdir"))
    >>> def run(name, hits):
    ...     ids = [f"c{k}" for k in range(len(hits))]
    ...     probs = [[0.9, 0.1] if hit else [0.1, 0.9] for hit in hits]
    ...     write_predictions(folder / name / "test_predictions.csv",
    ...                       ids, [0] * len(hits), probs, ["a", "b"])
    ...     return {"output_folder": str(folder / name)}
    >>> summary = {"reference": run("ref", [0] * 20 + [1] * 20),
    ...            "baseline": run("base", [1] * 40), "specialists": []}
    >>> result = summary_comparisons({7: summary})
    >>> list(result)
    ['baseline_vs_reference']
    >>> entry = result["baseline_vs_reference"]
    >>> entry["difference"], entry["first_only"], entry["holds"]
    (50.0, 20, True)
    """
    seeds = sorted(summaries)
    tasks = {}
    for first, second in claims:
        present = [
            s for s in seeds if first in summaries[s] and second in summaries[s]
        ]
        if present:
            rows = {
                s: (summaries[s][first], summaries[s][second]) for s in present
            }
            tasks[f"{first}_vs_{second}"] = ((first, second), rows, None)
    ranks = max(
        (len(summaries[s].get("specialists", [])) for s in seeds), default=0
    )
    for rank in range(ranks):
        present = [
            s for s in seeds if len(summaries[s].get("specialists", [])) > rank
        ]
        rows = {
            s: (summaries[s]["specialists"][rank], summaries[s]["baseline"])
            for s in present
        }
        pairs = {s: list(rows[s][0]["pair"]) for s in present}
        names = (f"specialist {rank + 1}", "baseline")
        key = f"specialist_{rank + 1}_vs_baseline_pair_errors"
        tasks[key] = (names, rows, pairs)
    comparisons = {}
    for key, (names, rows, pairs) in tasks.items():
        try:
            predictions = [
                {
                    s: read_predictions(
                        f"{row[k]['output_folder']}/{PREDICTIONS_FILE}"
                    )
                    for s, row in rows.items()
                }
                for k in (0, 1)
            ]
            comparisons[key] = compare_predictions(
                *predictions, names=names, pairs=pairs
            )
        except (ValueError, OSError) as error:  # a bad or missing file
            comparisons[key] = {"refused": str(error), "seeds": sorted(rows)}
    return comparisons


def comparisons_table(comparisons, runs="seeds"):
    """The comparisons as a Markdown table, one claim a row.

    Arguments
    ---------
    comparisons : dict
        ``{claim: entry}`` (:func:`summary_comparisons`).
    runs : str
        What the entries pooled (``seeds``, or ``folds`` for ``--folds``),
        named in the header and the legend.

    Returns
    -------
    str

    Example
    -------
    >>> print(comparisons_table({
    ...     "student_vs_kd_baseline": {"refused": "other clips", "seeds": [1]},
    ...     "student_vs_ensemble": {"difference": 2.5, "ci95": [0.5, 4.5],
    ...         "p_value": 0.0312, "n_clips": 600, "seeds": [1, 2, 3],
    ...         "holds": True},
    ...     "specialist_1_vs_baseline_pair_errors": {"difference": 5.0,
    ...         "ci95": None, "note": "too few clips", "p_value": 0.5,
    ...         "n_clips": 24, "seeds": [1, 2], "holds": False,
    ...         "pairs": ["a/b", "a/c", "a/b"], "errors": [3, 5]}},
    ...     runs="folds"))
    ... # doctest: +NORMALIZE_WHITESPACE
    | claim: first vs second | difference (points) | 95 % interval | \
p (exact McNemar) | clips (folds) | holds |
    |---|---|---|---|---|---|
    | student vs kd baseline | refused: other clips | | | (1) | no |
    | student vs ensemble | +2.5 | [+0.5, +4.5] | 0.031 | 600 (1, 2, 3) \
| yes |
    | specialist 1 vs baseline: errors in a/b, a/c (3 vs 5) | +5.0 | \
too few clips | 0.5 | 24 (1, 2) | no |
    <BLANKLINE>
    difference: first minus second in accuracy points, pooled over folds (a
    specialist: the baseline's errors in its pair minus its own, in points
    of the pair's clips); holds: the 95 % interval (bootstrap over clips
    within folds) lies above zero and p < 0.05.
    """
    lines = [
        "| claim: first vs second | difference (points) | 95 % interval "
        f"| p (exact McNemar) | clips ({runs}) | holds |",
        "|---|---|---|---|---|---|",
    ]
    for key, entry in comparisons.items():
        name = key.replace("_", " ")  # student vs kd baseline
        if "pairs" in entry:
            pairs = ", ".join(dict.fromkeys(entry["pairs"]))
            first, second = entry["errors"]
            name = (
                name.removesuffix(" pair errors")
                + f": errors in {pairs} ({first} vs {second})"
            )
        seeds = ", ".join(map(str, entry["seeds"]))
        if "refused" in entry:
            lines.append(
                f"| {name} | refused: {entry['refused']} | | | ({seeds}) | no |"
            )
            continue
        interval = (
            "[{:+.1f}, {:+.1f}]".format(*entry["ci95"])
            if entry["ci95"] is not None
            else entry["note"]
        )
        lines.append(
            f"| {name} | {entry['difference']:+.1f} | {interval} | "
            f"{entry['p_value']:.2g} | {entry['n_clips']} ({seeds}) | "
            f"{'yes' if entry['holds'] else 'no'} |"
        )
    lines.append("\n" + LEGEND.format(runs=runs))
    return "\n".join(lines)
