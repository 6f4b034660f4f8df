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
    rank_confusing_pairs,
    write_confusing_pairs,
)


def find_confusing_pairs(phase_folder, top_k=2, split="valid", pairs=None):
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

    Returns
    -------
    pathlib.Path
        The file written.
    """
    phase_folder = Path(phase_folder)
    results_file = phase_folder / f"{split}_results.json"
    if not results_file.is_file():
        raise FileNotFoundError(
            f"{results_file} is missing: train and evaluate the phase first"
        )
    with open(results_file, encoding="utf-8") as f:
        results = json.load(f)
    labels = results["labels"]
    matrix = np.asarray(results["confusion_matrix"])
    ranking = rank_confusing_pairs(matrix, labels)
    if pairs:
        chosen = parse_pairs(pairs, labels)
        by_pair = {tuple(sorted(p["pair"])): p for p in ranking}
        ranking = [
            by_pair.get(tuple(sorted(pair)), {"pair": list(pair), "count": 0})
            for pair in chosen
        ]
        top_k = len(ranking)
    out = phase_folder / "confusing_pairs.json"
    write_confusing_pairs(
        out, ranking, labels, source=str(results_file), top_k=top_k
    )
    return out


def main(argv=None):
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("phase_folder")
    parser.add_argument("--top_k", type=int, default=2)
    parser.add_argument("--split", default="valid")
    parser.add_argument("--pairs", default=None)
    args = parser.parse_args(argv)
    with one_line_faults(args.phase_folder, "phase folder"):
        path = find_confusing_pairs(
            args.phase_folder, args.top_k, args.split, args.pairs
        )
    print(path.read_text())


if __name__ == "__main__":
    main(sys.argv[1:])
