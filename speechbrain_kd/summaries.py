"""The pipeline's summaries and tables: what each phase's results keep,
a run's ``summary.json`` and plots, the mean and spread over seeds, and
the tables printed and written."""

import json
import statistics
from pathlib import Path

import numpy as np

from speechbrain_kd.comparisons import summary_comparisons
from speechbrain_kd.complexity import COMPLEXITY_FILE, describe_complexity
from speechbrain_kd.epochs import LEARNING_CURVE
from speechbrain_kd.files import write_json_atomic
from speechbrain_kd.pairs import accuracy_outside_pair, pair_ranking
from speechbrain_kd.plots import plot_confusion_matrices, plot_learning_curves

# The rows trained like the student: its controls, then the student itself.
STUDENT_ROWS = ("kd_baseline", "control", "student")
ROW_NAMES = {
    "kd_baseline": "kd_baseline (from the baseline alone)",
    "control": "control (true labels only)",
}


def phase_entry(results, folder):
    """The part of a phase's results that the summary keeps.

    The test accuracy and confusion matrix, and the model's size and cost
    (``complexity.json``, written by every phase of ``train.py``), and the
    accuracy per device and city where the results have it.

    Example
    -------
    >>> folder = getfixture("tmpdir")
    >>> phase_entry({"accuracy": 0.5, "confusion_matrix": [[1]],
    ...              "labels": ["a"]}, folder)["accuracy"]
    0.5
    """
    entry = {
        "accuracy": results["accuracy"],
        "output_folder": str(folder),
        "confusion_matrix": results["confusion_matrix"],
    }
    if "accuracy_by" in results:  # per device, per city
        entry["accuracy_by"] = results["accuracy_by"]
    complexity = Path(folder) / COMPLEXITY_FILE
    if complexity.is_file():
        entry["complexity"] = json.loads(complexity.read_text())
    return entry


def mean_and_spread(values):
    """Mean, sample standard deviation (0 for one value) and the values.

    Example
    -------
    >>> mean_and_spread([0.5, 0.7, 0.6])
    {'mean': 0.6, 'std': 0.1, 'values': [0.5, 0.7, 0.6]}
    """
    values = [float(v) for v in values]
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return {
        "mean": round(statistics.fmean(values), 10),
        "std": round(spread, 10),
        "values": values,
    }


def outside_pair(specs, combine):
    """The specialists' and the baseline's accuracy outside each pair.

    ``{}`` unless every specialist has both (summaries before they were
    kept have neither).

    Arguments
    ---------
    specs : list of dict
        Specialist entries of summaries (one rank, one per run).
    combine : callable
        Reduces the list of values of each key (:func:`mean_and_spread`,
        :func:`statistics.fmean`).

    Returns
    -------
    dict
        ``accuracy_outside_pair`` and ``baseline_accuracy_outside_pair``.

    Example
    -------
    >>> specs = [{"accuracy_outside_pair": 0.8,
    ...           "baseline_accuracy_outside_pair": 0.7},
    ...          {"accuracy_outside_pair": 0.6,
    ...           "baseline_accuracy_outside_pair": 0.7}]
    >>> outside_pair(specs, statistics.fmean)
    {'accuracy_outside_pair': 0.7, 'baseline_accuracy_outside_pair': 0.7}
    >>> outside_pair([{"pair_errors": 3}], statistics.fmean)
    {}
    """
    keys = ("accuracy_outside_pair", "baseline_accuracy_outside_pair")
    if not all(spec.get(key) is not None for spec in specs for key in keys):
        return {}
    return {key: combine([spec[key] for spec in specs]) for key in keys}


def summarize_seeds(summaries):
    """Mean and spread over seeds of every row of the pipeline's summary.

    Specialists are matched by rank (the most confused pair first): the
    pairs are chosen per seed, so the same rank can name other scenes, and
    a rank covers the seeds that trained one (``seeds``: a seed whose
    baseline confused fewer pairs has fewer specialists).
    ``orderings`` counts the seeds where each of the paper's claims holds.

    Arguments
    ---------
    summaries : dict of int -> dict
        Seed -> that run's ``summary.json``.

    Returns
    -------
    dict

    Example
    -------
    >>> def run(ref, base, ens, student, errors, was):
    ...     entry = lambda a: {"accuracy": a}
    ...     return {"reference": entry(ref), "baseline": entry(base),
    ...             "ensemble": entry(ens), "student": entry(student),
    ...             "specialists": [{"accuracy": base, "pair": ["a", "b"],
    ...                              "pair_errors": errors,
    ...                              "baseline_pair_errors": was}]}
    >>> table = summarize_seeds({1: run(.5, .7, .8, .8, 2, 4),
    ...                          2: run(.5, .8, .8, .7, 3, 3)})
    >>> table["models"]["baseline"]["mean"], table["orderings"]
    (0.75, {'baseline > reference': 2, 'ensemble >= baseline': 2, \
'student >= ensemble': 1, 'every specialist cuts its pair errors': 1})
    >>> runs = {1: run(.5, .7, .8, .8, 2, 4), 2: run(.5, .8, .8, .7, 3, 3)}
    >>> runs[1]["specialists"] *= 2  # seed 1 trained a second specialist
    >>> [(s["rank"], s["seeds"]) for s in summarize_seeds(runs)["specialists"]]
    [(1, [1, 2]), (2, [1])]
    >>> runs = {1: run(.5, .7, .8, .8, 2, 4), 2: run(.5, .8, .8, .7, 3, 3)}
    >>> for seed, control in ((1, .75), (2, .7)):
    ...     runs[seed]["control"] = {"accuracy": control}
    >>> summarize_seeds(runs)["orderings"]["student > control"]
    1
    """
    seeds = sorted(summaries)
    runs = [summaries[seed] for seed in seeds]
    models = {
        name: mean_and_spread([run[name]["accuracy"] for run in runs])
        for name in ("reference", "baseline", "ensemble", *STUDENT_ROWS)
        if all(name in run for run in runs)
    }
    specialists = []
    for rank in range(max(len(run["specialists"]) for run in runs)):
        having = [s for s in seeds if len(summaries[s]["specialists"]) > rank]
        specs = [summaries[s]["specialists"][rank] for s in having]
        specialists.append(
            {
                "rank": rank + 1,
                "seeds": having,
                "pairs": ["/".join(spec["pair"]) for spec in specs],
                "accuracy": mean_and_spread([s["accuracy"] for s in specs]),
                "pair_errors": mean_and_spread(
                    [s["pair_errors"] for s in specs]
                ),
                "baseline_pair_errors": mean_and_spread(
                    [s["baseline_pair_errors"] for s in specs]
                ),
                **outside_pair(specs, mean_and_spread),
            }
        )

    def holds(claim):
        return sum(bool(claim(run)) for run in runs)

    def accuracy(run, name):
        return run[name]["accuracy"]

    orderings = {
        "baseline > reference": holds(
            lambda r: accuracy(r, "baseline") > accuracy(r, "reference")
        ),
        "ensemble >= baseline": holds(
            lambda r: accuracy(r, "ensemble") >= accuracy(r, "baseline")
        ),
        "student >= ensemble": holds(
            lambda r: accuracy(r, "student") >= accuracy(r, "ensemble")
        ),
        "every specialist cuts its pair errors": holds(
            lambda r: all(
                s["pair_errors"] < s["baseline_pair_errors"]
                for s in r["specialists"]
            )
        ),
    }
    for control in ("control", "kd_baseline"):
        if control in models:
            orderings[f"student > {control}"] = holds(
                lambda r, c=control: accuracy(r, "student") > accuracy(r, c)
            )
    return {
        "seeds": seeds,
        "models": models,
        "specialists": specialists,
        "orderings": orderings,
    }


def seeds_table(table):
    """The multi-seed summary as a Markdown table (the README's format).

    Example
    -------
    >>> row = {"mean": 0.75, "std": 0.05, "values": [0.7, 0.8]}
    >>> errors = lambda mean: {"mean": mean, "std": 1.0, "values": []}
    >>> spec = {"rank": 1, "pairs": ["a/b", "a/b"], "accuracy": row,
    ...         "pair_errors": errors(2), "baseline_pair_errors": errors(4),
    ...         "accuracy_outside_pair": row,
    ...         "baseline_accuracy_outside_pair": row}
    >>> print(seeds_table({"seeds": [1, 2], "models": {
    ...     "reference": row, "baseline": row, "ensemble": row,
    ...     "control": row, "student": row}, "specialists": [spec],
    ...     "orderings": {}}))
    ... # doctest: +NORMALIZE_WHITESPACE
    | model (2 seeds: 1, 2) | test accuracy | errors in its pair (baseline's) \
| accuracy outside its pair (baseline's) |
    |---|---|---|---|
    | linear reference (log-mel statistics) | 75.0 ± 5.0 % | | |
    | baseline | 75.0 ± 5.0 % | | |
    | specialist 1 (a/b) | 75.0 ± 5.0 % | 2.0 ± 1.0 (4.0 ± 1.0) \
| 75.0 ± 5.0 % (75.0 ± 5.0 %) |
    | ensemble | 75.0 ± 5.0 % | | |
    | control (true labels only) | 75.0 ± 5.0 % | | |
    | student | 75.0 ± 5.0 % | | |
    >>> second = dict(spec, rank=2, pairs=["c/d"], seeds=[2])
    >>> print(seeds_table({"seeds": [1, 2], "models": {
    ...     "reference": row, "baseline": row, "ensemble": row},
    ...     "specialists": [spec, second]}).splitlines()[5][:36])
    | specialist 2 (seeds 2: c/d) | 75.0
    """

    def percent(entry):
        return f"{100 * entry['mean']:.1f} ± {100 * entry['std']:.1f} %"

    def count(entry):
        return f"{entry['mean']:.1f} ± {entry['std']:.1f}"

    seeds = ", ".join(map(str, table["seeds"]))
    lines = [
        f"| model ({len(table['seeds'])} seeds: {seeds}) | test accuracy "
        "| errors in its pair (baseline's) "
        "| accuracy outside its pair (baseline's) |",
        "|---|---|---|---|",
    ]
    names = {"reference": "linear reference (log-mel statistics)"}
    for name in ("reference", "baseline"):
        lines.append(
            f"| {names.get(name, name)} | {percent(table['models'][name])} "
            "| | |"
        )
    for spec in table["specialists"]:
        pairs = ", ".join(dict.fromkeys(spec["pairs"]))
        outside = ""
        if "accuracy_outside_pair" in spec:
            outside = (
                f"{percent(spec['accuracy_outside_pair'])} "
                f"({percent(spec['baseline_accuracy_outside_pair'])})"
            )
        if spec.get("seeds", table["seeds"]) != table["seeds"]:
            pairs = f"seeds {', '.join(map(str, spec['seeds']))}: {pairs}"
        lines.append(
            f"| specialist {spec['rank']} ({pairs}) | "
            f"{percent(spec['accuracy'])} | {count(spec['pair_errors'])} "
            f"({count(spec['baseline_pair_errors'])}) | {outside} |"
        )
    for name in ("ensemble", *STUDENT_ROWS):
        if name in table["models"]:
            row = ROW_NAMES.get(name, name)
            lines.append(f"| {row} | {percent(table['models'][name])} | | |")
    return "\n".join(lines)


def print_table(summary):
    """Print the accuracies and the errors inside each target pair.

    Example
    -------
    >>> row = {"accuracy": 0.5}
    >>> print_table({"reference": row, "baseline": row, "ensemble": row,
    ...              "student": row, "specialists": [],
    ...              "phase_seconds": {"baseline": 90}})
    ... # doctest: +NORMALIZE_WHITESPACE
    <BLANKLINE>
    model                                     test accuracy  pair errors
    --------------------------------------------------------------------
    linear reference (log-mel statistics)            50.00%
    baseline                                         50.00%
    ensemble                                         50.00%
    student                                          50.00%
    <BLANKLINE>
    size and cost (MACs for 1 s of audio):
    <BLANKLINE>
    phases took 1.5 min in all
    """
    print(f"\n{'model':<40} {'test accuracy':>14} {'pair errors':>12}")
    print("-" * 68)
    reference = "linear reference (log-mel statistics)"
    print(f"{reference:<40} {100 * summary['reference']['accuracy']:>13.2f}%")
    print(f"{'baseline':<40} {100 * summary['baseline']['accuracy']:>13.2f}%")
    for spec in summary["specialists"]:
        name = "specialist " + "/".join(spec["pair"])
        errors = f"{spec['pair_errors']} (was {spec['baseline_pair_errors']})"
        print(f"{name:<40} {100 * spec['accuracy']:>13.2f}% {errors:>12}")
        if spec.get("accuracy_outside_pair") is not None:
            outside = (
                f"{100 * spec['accuracy_outside_pair']:.2f}% (baseline "
                f"{100 * spec['baseline_accuracy_outside_pair']:.2f}%)"
            )
            print(f"{'  outside its pair':<40} {outside:>14}")
    for name in ("ensemble", *STUDENT_ROWS):
        if name in summary:
            row = ROW_NAMES.get(name, name)
            print(f"{row:<40} {100 * summary[name]['accuracy']:>13.2f}%")
    devices = summary["baseline"].get("accuracy_by", {}).get("device", {})
    if len(devices) > 1:  # TAU 2020/2022 Mobile: one column per device
        print("\ntest accuracy per device (%):")
        print(f"  {'':<10} " + " ".join(f"{d:>5}" for d in devices))
        for name in ("baseline", "ensemble", "student"):
            by = summary[name].get("accuracy_by", {}).get("device", {})
            cells = (
                f"{100 * by[d]['accuracy']:>5.1f}" if d in by else f"{'':>5}"
                for d in devices
            )
            print(f"  {name:<10} " + " ".join(cells))
    print("\nsize and cost (MACs for 1 s of audio):")
    for name in ("baseline", "ensemble", "student"):
        if "complexity" in summary[name]:
            line = describe_complexity(summary[name]["complexity"])
            print(f"  {name:<10} {line}")
    seconds = sum(summary["phase_seconds"].values())
    print(f"\nphases took {seconds / 60:.1f} min in all")


def folds_table(table):
    """The ``--folds`` summary as a Markdown table: every row's accuracy
    over the pooled test clips of all folds.

    Example
    -------
    >>> row = {"accuracy": 0.75, "n_clips": 200, "folds": [1, 2]}
    >>> print(folds_table({"folds": 2, "seeds": None, "models": {
    ...     "baseline": row, "control": row}}))
    ... # doctest: +NORMALIZE_WHITESPACE
    | model (2 folds, every clip tested once) | test accuracy | clips \
| errors in its pair (baseline's) \
| accuracy outside its pair (baseline's; mean over folds) |
    |---|---|---|---|---|
    | baseline | 75.0 % | 200 | | |
    | control (true labels only) | 75.0 % | 200 | | |
    """
    seeds = table.get("seeds")
    runs = f"{table['folds']} folds"
    if seeds:
        runs += f" x {len(seeds)} seeds: {', '.join(map(str, seeds))}"
    names = {"reference": "linear reference (log-mel statistics)", **ROW_NAMES}
    lines = [
        f"| model ({runs}, every clip tested once) | test accuracy | clips "
        "| errors in its pair (baseline's) "
        "| accuracy outside its pair (baseline's; mean over folds) |",
        "|---|---|---|---|---|",
    ]
    for name, entry in table["models"].items():
        lines.append(
            f"| {names.get(name, name)} | {100 * entry['accuracy']:.1f} % "
            f"| {entry['n_clips']} | | |"
        )
        if name == "baseline":
            lines.extend(fold_specialist_rows(table.get("specialists", {})))
    return "\n".join(lines)


def fold_specialist_rows(specialists):
    """The ``--folds`` table's rows of the specialists, one per rank.

    A rank's accuracy is over the pooled test clips of the folds (from
    each fold's confusion matrix), its pair errors and the baseline's are
    summed over the folds, and its accuracy outside its pair is the mean
    over the folds; a rank that some folds did not train names the folds
    that did.

    Arguments
    ---------
    specialists : dict
        ``{fold key: that fold's summary's specialists}``.

    Returns
    -------
    list of str

    Example
    -------
    >>> spec = {"pair": ["a", "b"], "confusion_matrix": [[3, 1], [0, 4]],
    ...         "pair_errors": 1, "baseline_pair_errors": 3,
    ...         "accuracy_outside_pair": 0.9,
    ...         "baseline_accuracy_outside_pair": 0.8}
    >>> fold_specialist_rows({"1": [spec], "2": [spec]})
    ['| specialist 1 (a/b) | 87.5 % | 16 | 2 (6) | 90.0 % (80.0 %) |']
    >>> fold_specialist_rows({"1": [spec, spec], "2": [spec]})[1]
    '| specialist 2 (folds 1: a/b) | 87.5 % | 8 | 1 (3) | 90.0 % (80.0 %) |'
    """
    rows = []
    for rank in range(max(map(len, specialists.values()), default=0)):
        having = [k for k, run in specialists.items() if len(run) > rank]
        specs = [specialists[k][rank] for k in having]
        pairs = ", ".join(dict.fromkeys("/".join(s["pair"]) for s in specs))
        if len(having) < len(specialists):
            pairs = f"folds {', '.join(map(str, having))}: {pairs}"
        matrices = [np.asarray(s["confusion_matrix"]) for s in specs]
        right = sum(int(np.trace(m)) for m in matrices)
        clips = sum(int(m.sum()) for m in matrices)
        errors = sum(s["pair_errors"] for s in specs)
        was = sum(s["baseline_pair_errors"] for s in specs)
        means = outside_pair(specs, statistics.fmean)
        outside = (
            f"{100 * means['accuracy_outside_pair']:.1f} % "
            f"({100 * means['baseline_accuracy_outside_pair']:.1f} %)"
            if means
            else ""
        )
        rows.append(
            f"| specialist {rank + 1} ({pairs}) | {100 * right / clips:.1f} % "
            f"| {clips} | {errors} ({was}) | {outside} |"
        )
    return rows


def _test_results(folder):
    with open(Path(folder) / "test_results.json", encoding="utf-8") as f:
        return json.load(f)


def pipeline_summary(header, rows, specialists, seconds, seed, output):
    """Write a pipeline's ``summary.json``, confusion and learning-curve
    plots from the results its phases wrote; return the summary.

    Arguments
    ---------
    header : dict
        What the run was made from (preset, data folder, data fingerprint):
        the summary's first keys.
    rows : dict of str -> path
        ``reference``, ``baseline``, ``ensemble``, ``student`` and the
        controls that ran, to their output folders.
    specialists : dict of tuple -> path
        Each specialist's pair (in rank order) to its output folder.
    seconds : dict
        Each phase's wall time (``phase_seconds``).
    seed : int
        The run's seed: the stratum of its paired comparisons.
    output : pathlib.Path
        The pipeline's output folder (the baseline's holds
        ``confusing_pairs.json``).

    Returns
    -------
    dict
        The summary; each specialist entry keeps its confusion matrix.

    Example
    -------
    >>> from speechbrain_kd.metrics import write_predictions
    >>> out = Path(getfixture("tmpdir"))
    >>> def phase(name, hits):
    ...     ids = [f"c{i}" for i in range(len(hits))]
    ...     write_predictions(out / name / "test_predictions.csv", ids,
    ...                       [0] * len(ids), [[.9, .1] if h else [.1, .9]
    ...                                        for h in hits], ["a", "b"])
    ...     matrix = [[sum(hits), len(hits) - sum(hits)], [0, 0]]
    ...     (out / name / "test_results.json").write_text(json.dumps({
    ...         "accuracy": sum(hits) / len(hits), "labels": ["a", "b"],
    ...         "confusion_matrix": matrix}))
    ...     return out / name
    >>> rows = {"reference": phase("reference", [1, 0] * 20),
    ...         "baseline": phase("baseline", [1] * 40),
    ...         "ensemble": phase("ensemble", [1] * 40),
    ...         "student": phase("student", [1] * 40)}
    >>> _ = (out / "baseline" / "confusing_pairs.json").write_text(
    ...     json.dumps({"pairs": []}))
    >>> summary = pipeline_summary({"preset": "demo"}, rows, {}, {}, 1, out)
    >>> summary["baseline"]["accuracy"], summary["pairs"]["chosen"]
    (1.0, [])
    >>> summary["comparisons"]["baseline_vs_reference"]["difference"]
    50.0
    >>> sorted(p.name for p in out.glob("*.*"))
    ['confusion_matrices.png', 'summary.json']
    """
    output = Path(output)
    base = _test_results(rows["baseline"])
    labels = base["labels"]
    summary = {
        **header,
        "labels": labels,
        **{
            name: phase_entry(_test_results(folder), folder)
            for name, folder in rows.items()
        },
        "pairs": pair_ranking(Path(rows["baseline"]) / "confusing_pairs.json"),
        "specialists": [],
        "phase_seconds": seconds,
    }
    matrices = {
        "linear reference": summary["reference"]["confusion_matrix"],
        "baseline": base["confusion_matrix"],
    }
    highlights, curves = {}, {"baseline": rows["baseline"]}
    for pair, folder in specialists.items():
        pair = list(pair)
        spec = _test_results(folder)
        summary["specialists"].append(
            {
                **phase_entry(spec, folder),
                "pair": pair,
                "pair_errors": spec["pair_errors"]["/".join(pair)],
                "baseline_pair_errors": spec["baseline_pair_errors"][
                    "/".join(pair)
                ],
                # What the specialist does to the other scenes.
                "accuracy_outside_pair": accuracy_outside_pair(
                    spec["confusion_matrix"], labels, pair
                ),
                "baseline_accuracy_outside_pair": accuracy_outside_pair(
                    base["confusion_matrix"], labels, pair
                ),
            }
        )
        name = f"specialist {'-'.join(pair)}"
        matrices[name] = spec["confusion_matrix"]
        highlights[name] = [pair]
        curves[name] = folder
    for name in STUDENT_ROWS:
        if name in summary:
            matrices[name] = summary[name]["confusion_matrix"]
            curves[name] = rows[name]
    plot = output / "confusion_matrices.png"
    plot_confusion_matrices(matrices, labels, plot, highlight_pairs=highlights)
    summary["confusion_plot"] = str(plot)
    curves = {
        name: Path(folder) / LEARNING_CURVE
        for name, folder in curves.items()
        if (Path(folder) / LEARNING_CURVE).is_file()
    }
    if curves:
        plot_learning_curves(curves, output / "learning_curves.png")
        summary["learning_curves"] = str(output / "learning_curves.png")
    for entry in ("reference", "baseline", "ensemble", *STUDENT_ROWS):
        if entry in summary:
            summary[entry].pop("confusion_matrix")
    summary["comparisons"] = summary_comparisons({seed: summary})
    write_json_atomic(output / "summary.json", summary)
    return summary
