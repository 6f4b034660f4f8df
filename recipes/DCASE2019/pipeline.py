#!/usr/bin/env python3
"""The whole method of Jung et al. (IEEE Access 2020) in one command.

    python recipes/DCASE2019/pipeline.py                 # built-in demo data
    python recipes/DCASE2019/pipeline.py --data_folder=/data/TAU2019 \
        --preset=paper --output_folder=results/tau2019 --device=cuda:0

Runs, each as ``train.py`` with its YAML (so every phase can also be run,
resumed or inspected on its own):

1. baseline (``hparams/baseline.yaml``),
2. confusing pairs of the baseline on the validation split,
3. one specialist per pair (``hparams/specialist.yaml``),
4. the ensemble of baseline and specialists (``hparams/ensemble.yaml``),
5. the student distilled from all of them (``hparams/distill.yaml``),

then prints a table and writes ``<output_folder>/summary.json`` and
``<output_folder>/confusion_matrices.png``. A phase whose outputs exist and
were made with the same settings is skipped, so an interrupted pipeline
resumes (an interrupted phase resumes from its last checkpoint). Options
other than the ones below (``--device``, ``--precision``, any hparam such
as ``--number_of_epochs=3``) are passed to every phase that knows them.

Presets (``hparams/presets/<name>.yaml``): ``paper``, the published
configuration for real data on a GPU, and ``demo``, small enough for a few
minutes on 2 CPU cores (the default when no ``--data_folder`` is given).
"""

import argparse
import hashlib
import json
import logging
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

from speechbrain_kd.analysis import (
    plot_confusion_matrices,
    read_confusing_pairs,
    write_json_atomic,
)

RECIPE = Path(__file__).resolve().parent
HPARAMS = RECIPE / "hparams"
logger = logging.getLogger("pipeline")


def yaml_keys(hparams_file):
    """The top-level keys of a HyperPyYAML file (without loading it)."""
    text = Path(hparams_file).read_text(encoding="utf-8")
    return set(re.findall(r"^([A-Za-z_][\w]*):", text, flags=re.MULTILINE))


def load_preset(name):
    """Read ``hparams/presets/<name>.yaml``: ``all`` plus per-phase keys."""
    path = HPARAMS / "presets" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (HPARAMS / "presets").glob("*.yaml"))
        raise SystemExit(f"unknown preset {name!r}; choose one of {known}")
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def parse_extra(extra):
    """Split the pass-through options into hparams and run options."""
    overrides, run_opts = {}, []
    run_opt_names = {
        "device",
        "precision",
        "eval_precision",
        "data_parallel_backend",
        "distributed_backend",
        "debug",
        "debug_batches",
        "debug_epochs",
        "debug_persistently",
        "log_config",
        "jit",
        "compile",
    }
    for item in extra:
        if not item.startswith("--"):
            raise SystemExit(f"unexpected argument {item!r}")
        key, _, value = item[2:].partition("=")
        if key in run_opt_names:
            run_opts.append(item)
        elif not value:
            raise SystemExit(f"give a value: --{key}=<value>")
        else:
            overrides[key] = yaml.safe_load(value)
    return overrides, run_opts


class Pipeline:
    """Run the phases in order, skipping the ones already complete."""

    def __init__(self, args, overrides, run_opts):
        self.output = Path(args.output_folder).absolute()
        self.data_folder = Path(args.data_folder).absolute()
        self.preset = load_preset(args.preset)
        self.preset_name = args.preset
        self.overrides = overrides
        self.run_opts = run_opts
        self.timings = {}

    def phase_overrides(self, phase_yaml, phase, **extra):
        """Preset, then command line, then the phase's wiring."""
        keys = yaml_keys(HPARAMS / phase_yaml)
        merged = {}
        for source in (
            self.preset.get("all", {}),
            self.preset.get(phase, {}),
            self.overrides,
        ):
            merged.update({k: v for k, v in source.items() if k in keys})
        merged.update(
            data_folder=str(self.data_folder),
            prepare_folder=str(self.output / "manifests"),
        )
        merged.update(extra)
        return merged

    def run_phase(self, name, phase_yaml, done_file, **extra):
        """Run ``train.py <phase_yaml>`` unless it already finished."""
        phase = name.split(":")[0]
        overrides = self.phase_overrides(phase_yaml, phase, **extra)
        folder = Path(overrides["output_folder"])
        stamp = folder / "pipeline_phase.json"
        settings = {
            "hparams": phase_yaml,
            "overrides": overrides,
            "run_opts": self.run_opts,
        }
        digest = hashlib.sha256(
            json.dumps(settings, sort_keys=True).encode()
        ).hexdigest()
        if stamp.is_file() and (folder / done_file).is_file():
            previous = json.loads(stamp.read_text())
            if previous.get("digest") == digest:
                print(f"[pipeline] {name}: complete, skipped ({folder})")
                self.timings[name] = previous.get("seconds", 0.0)
                return folder
            raise SystemExit(
                f"{folder} holds a finished {name} made with other "
                "settings; use another --output_folder or delete it"
            )
        command = [sys.executable, str(RECIPE / "train.py")]
        command.append(str(HPARAMS / phase_yaml))
        command += [f"--{k}={json.dumps(v)}" for k, v in overrides.items()]
        command += self.run_opts
        print(f"[pipeline] {name}: {' '.join(command)}", flush=True)
        start = time.time()
        subprocess.run(command, check=True, cwd=RECIPE)
        seconds = time.time() - start
        self.timings[name] = seconds
        write_json_atomic(
            stamp, {"digest": digest, "settings": settings, "seconds": seconds}
        )
        return folder

    def run(self):
        """All phases, the summary table and ``summary.json``."""
        out = self.output
        baseline = self.run_phase(
            "baseline",
            "baseline.yaml",
            "test_results.json",
            output_folder=str(out / "baseline"),
        )
        start = time.time()
        top_k = self.overrides.get(
            "top_k_pairs",
            self.preset.get("specialist", {}).get("top_k_pairs", 2),
        )
        subprocess.run(
            [
                sys.executable,
                str(RECIPE / "find_confusing_pairs.py"),
                str(baseline),
                f"--top_k={top_k}",
            ],
            check=True,
        )
        self.timings["confusing_pairs"] = time.time() - start
        pairs = [
            list(p["pair"])
            for p in read_confusing_pairs(baseline / "confusing_pairs.json")
        ]
        specialists = []
        for pair in pairs:
            folder = self.run_phase(
                "specialist:" + "-".join(pair),
                "specialist.yaml",
                "test_results.json",
                output_folder=str(out / "specialists" / "-".join(pair)),
                init_from=str(baseline),
                target_pair=pair,
            )
            specialists.append(folder)
        teachers = [str(baseline)] + [str(f) for f in specialists]
        ensemble = self.run_phase(
            "ensemble",
            "ensemble.yaml",
            "test_results.json",
            output_folder=str(out / "ensemble"),
            teacher_folders=teachers,
        )
        student = self.run_phase(
            "distill",
            "distill.yaml",
            "test_results.json",
            output_folder=str(out / "student"),
            teacher_folders=teachers,
            init_from=str(baseline),
        )
        return self.summarize(baseline, pairs, specialists, ensemble, student)

    def summarize(self, baseline, pairs, specialists, ensemble, student):
        """Write ``summary.json`` and the side-by-side confusion plot."""

        def results(folder):
            with open(Path(folder) / "test_results.json") as f:
                return json.load(f)

        base = results(baseline)
        summary = {
            "preset": self.preset_name,
            "data_folder": str(self.data_folder),
            "labels": base["labels"],
            "baseline": phase_entry(base, baseline),
            "ensemble": phase_entry(results(ensemble), ensemble),
            "student": phase_entry(results(student), student),
            "specialists": [],
            "phase_seconds": self.timings,
        }
        matrices = {"baseline": base["confusion_matrix"]}
        highlights = {}
        for pair, folder in zip(pairs, specialists):
            spec = results(folder)
            name = "-".join(pair)
            summary["specialists"].append(
                {
                    **phase_entry(spec, folder),
                    "pair": pair,
                    "pair_errors": spec["pair_errors"]["/".join(pair)],
                    "baseline_pair_errors": spec["baseline_pair_errors"][
                        "/".join(pair)
                    ],
                }
            )
            matrices[f"specialist {name}"] = spec["confusion_matrix"]
            highlights[f"specialist {name}"] = [pair]
        matrices["student"] = summary["student"]["confusion_matrix"]
        plot = self.output / "confusion_matrices.png"
        plot_confusion_matrices(
            matrices, base["labels"], plot, highlight_pairs=highlights
        )
        summary["confusion_plot"] = str(plot)
        for entry in ("baseline", "ensemble", "student"):
            summary[entry].pop("confusion_matrix")
        write_json_atomic(self.output / "summary.json", summary)
        print_table(summary)
        return summary


def phase_entry(results, folder):
    """The part of a phase's test results that the summary keeps."""
    return {
        "accuracy": results["accuracy"],
        "output_folder": str(folder),
        "confusion_matrix": results["confusion_matrix"],
    }


def print_table(summary):
    """Print the accuracies and the errors inside each target pair."""
    print(f"\n{'model':<40} {'test accuracy':>14} {'pair errors':>12}")
    print("-" * 68)
    print(f"{'baseline':<40} {100 * summary['baseline']['accuracy']:>13.2f}%")
    for spec in summary["specialists"]:
        name = "specialist " + "/".join(spec["pair"])
        errors = f"{spec['pair_errors']} (was {spec['baseline_pair_errors']})"
        print(f"{name:<40} {100 * spec['accuracy']:>13.2f}% {errors:>12}")
    print(f"{'ensemble':<40} {100 * summary['ensemble']['accuracy']:>13.2f}%")
    print(f"{'student':<40} {100 * summary['student']['accuracy']:>13.2f}%")
    seconds = sum(summary["phase_seconds"].values())
    print(f"\nphases took {seconds / 60:.1f} min in all")


def main(argv=None):
    """Parse the command line, make the demo data if needed, run."""
    parser = argparse.ArgumentParser(
        description="Baseline, specialists, ensemble and distilled student.",
    )
    parser.add_argument(
        "--data_folder",
        default=None,
        help="a TAU-layout folder; default: generate the demo set",
    )
    parser.add_argument("--output_folder", default="results/pipeline")
    parser.add_argument(
        "--preset",
        default=None,
        help="paper or demo (default: demo without --data_folder, else paper)",
    )
    args, extra = parser.parse_known_args(argv)
    overrides, run_opts = parse_extra(extra)
    if args.data_folder is None:
        from speechbrain_kd.demo_data import generate_demo_dataset

        args.data_folder = str(Path(args.output_folder) / "demo_data")
        generate_demo_dataset(args.data_folder)
        args.preset = args.preset or "demo"
    args.preset = args.preset or "paper"
    Pipeline(args, overrides, run_opts).run()


if __name__ == "__main__":
    main()
