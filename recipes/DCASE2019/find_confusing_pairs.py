#!/usr/bin/env python3
"""Phase 2: rank the pairs of scenes a trained model confuses most.

Reads ``<phase folder>/valid_results.json`` (written by ``train.py`` after
training), makes the confusion matrix symmetric (C + C^T), ranks the pairs
with deterministic tie-breaking and writes the top k to
``<phase folder>/confusing_pairs.json``, which ``hparams/specialist.yaml``
reads. Pairs can also be given by hand with ``--pairs``.

    python find_confusing_pairs.py results/baseline/1234 --top_k 2
    python find_confusing_pairs.py results/baseline/1234 \
        --pairs "airport,shopping_mall;metro,tram"
    python find_confusing_pairs.py results/baseline/1234 --top_k 2 \
        --min_pair_errors 3 --fold_results folds/*/baseline/test_results.json

A pair with fewer than ``--min_pair_errors`` mutual errors gets no
specialist (none may qualify: then no specialist is trained). With
``--fold_results`` the ranking counts the summed out-of-fold predictions of
k baselines (every training clip) instead of the phase's validation split.
The file and the printout say which clips were ranked.

Jung et al., "Knowledge Distillation in Acoustic Scene Classification",
IEEE Access 2020, used the top 2 pairs.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from speechbrain_kd.environment import one_line_faults
from speechbrain_kd.pairs import (
    parse_pairs,
    pool_confusion,
    rank_confusing_pairs,
    ranking_source,
    write_confusing_pairs,
)


def find_confusing_pairs(
    phase_folder,
    top_k=2,
    split="valid",
    pairs=None,
    min_pair_errors=0,
    fold_results=None,
):
    """Write ``confusing_pairs.json`` into ``phase_folder`` and return it.

    Arguments
    ---------
    phase_folder : str or pathlib.Path
        Output folder of a trained phase (the baseline).
    top_k : int
        How many pairs to keep.
    split : str
        Whose confusion matrix to rank (``valid``: never the test split).
    pairs : str or list, optional
        Pairs given by hand instead of ranked ones.
    min_pair_errors : int
        A pair with fewer mutual errors is not chosen (0: any error).
    fold_results : list of path, optional
        ``<split>_results.json`` files of k-fold baselines, each evaluated
        on the training clips it left out: their summed confusion matrix
        is ranked instead of ``split``'s.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    phase_folder = Path(phase_folder)
    if fold_results:
        for path in fold_results:
            if not Path(path).is_file():
                raise FileNotFoundError(f"fold results {path} is missing")
        matrix, labels = pool_confusion(fold_results)
        source = [str(path) for path in fold_results]
        ranked_from = ranking_source(matrix, folds=len(fold_results))
    else:
        results_file = phase_folder / f"{split}_results.json"
        if not results_file.is_file():
            raise FileNotFoundError(
                f"{results_file} is missing: train and evaluate the phase first"
            )
        with open(results_file, encoding="utf-8") as f:
            results = json.load(f)
        labels = results["labels"]
        matrix = np.asarray(results["confusion_matrix"])
        source = str(results_file)
        ranked_from = ranking_source(matrix, split)
    # Pairs given by hand keep their counts, however few.
    floor = 0 if pairs else min_pair_errors
    ranking = rank_confusing_pairs(matrix, labels, min_pair_errors=floor)
    if pairs:
        chosen = parse_pairs(pairs, labels)
        by_pair = {tuple(sorted(p["pair"])): p for p in ranking}
        ranking = [
            by_pair.get(tuple(sorted(pair)), {"pair": list(pair), "count": 0})
            for pair in chosen
        ]
        top_k = len(ranking)
        ranked_from = "given by hand"
    out = phase_folder / "confusing_pairs.json"
    write_confusing_pairs(
        out,
        ranking,
        labels,
        source=source if isinstance(source, str) else "; ".join(source),
        top_k=top_k,
        ranked_from=ranked_from,
        min_pair_errors=min_pair_errors,
    )
    chosen = ", ".join("/".join(p["pair"]) for p in ranking[:top_k])
    if chosen:
        print(f"[pairs] {ranked_from}: {chosen}")
    else:
        print(
            f"[pairs] {ranked_from}: no pair has {max(min_pair_errors, 1)} "
            "or more mutual errors, so no specialist is trained"
        )
    return out


def main(argv=None):
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("phase_folder")
    parser.add_argument("--top_k", type=int, default=2)
    parser.add_argument("--split", default="valid")
    parser.add_argument("--pairs", default=None)
    parser.add_argument("--min_pair_errors", type=int, default=0)
    parser.add_argument("--fold_results", nargs="+", default=None)
    args = parser.parse_args(argv)
    with one_line_faults(args.phase_folder, "phase folder"):
        try:
            path = find_confusing_pairs(
                args.phase_folder,
                args.top_k,
                args.split,
                args.pairs,
                args.min_pair_errors,
                args.fold_results,
            )
        except (FileNotFoundError, ValueError) as error:
            raise SystemExit(f"find_confusing_pairs.py: {error}") from None
    print(path.read_text())


if __name__ == "__main__":
    main(sys.argv[1:])
