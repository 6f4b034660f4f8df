#!/usr/bin/env python3
"""The whole method of Jung et al. (IEEE Access 2020) in one command.

    python recipes/DCASE2019/pipeline.py                 # built-in demo data
    python recipes/DCASE2019/pipeline.py --data_folder=/data/TAU2019 \
        --preset=paper --output_folder=results/tau2019 --device=cuda:0

Runs, each as ``train.py`` with its YAML (so every phase can also be run,
resumed or inspected on its own):

1. baseline (``hparams/baseline.yaml``),
2. confusing pairs of the baseline on the validation split (with
   ``--ranking_folds=K``: on the out-of-fold predictions of K more
   baselines over every training clip, grouped by location),
3. one specialist per pair (``hparams/specialist.yaml``),
4. the ensemble of baseline and specialists (``hparams/ensemble.yaml``),
5. the student distilled from all of them (``hparams/distill.yaml``),

and, beside them, a linear reference (logistic regression on the mean
and deviation of log-mel bands, :mod:`speechbrain_kd.reference`) on the same
splits; then prints a table and writes ``<output_folder>/summary.json`` and
``<output_folder>/confusion_matrices.png``. The summary's ``comparisons``
hold each claim of the paper as a paired comparison of two models on the
same test clips (:mod:`speechbrain_kd.comparisons`), pooled over the seeds
in ``seeds_summary.json`` with ``--seeds``. A phase whose outputs exist and
were made with the same settings is skipped, so an interrupted pipeline
resumes (an interrupted phase resumes from its last checkpoint). Options
other than the ones below (``--device``, ``--precision``, any hparam such
as ``--number_of_epochs=3``) are passed to every phase that knows them.

Presets (``hparams/presets/<name>.yaml``): ``paper``, the published
configuration for real data on a GPU (``--preset=paper``), and ``demo``
(the default, with or without ``--data_folder``), a log-mel CNN small
enough for a few minutes on 2 CPU cores that learns a few hundred real
clips too.

About 720 lines: the run order of the method and its command line; presets,
running a phase, summaries and option parsing are library modules
(:mod:`speechbrain_kd.presets`, :mod:`~speechbrain_kd.phase_runner`,
:mod:`~speechbrain_kd.summaries`, :mod:`~speechbrain_kd.pipeline_options`).
"""

import argparse
import json
import sys
import time
from pathlib import Path

from dcase2019_prepare import prepare_from_settings, settings_scenes

from speechbrain_kd.comparisons import comparisons_table, summary_comparisons
from speechbrain_kd.complexity import LIMIT_SETTINGS, describe_complexity
from speechbrain_kd.environment import check_device, one_line_faults
from speechbrain_kd.experiment import FolderInUse, sole_writer
from speechbrain_kd.files import write_json_atomic
from speechbrain_kd.folds import (
    FOLDS_FILE,
    fold_comparisons,
    pooled_accuracy,
    write_fold_views,
)
from speechbrain_kd.hparams_preview import (
    SettingError,
    preview_hparams,
    written_settings,
)
from speechbrain_kd.models import known_families
from speechbrain_kd.pairs import (
    read_confusing_pairs,
)
from speechbrain_kd.phase import (
    DataPreparationError,
    check_phase_limits,
    prepare_data,
)
from speechbrain_kd.phase_runner import (
    PhaseFailed,
    PhaseRefused,
    PhaseRunner,
    run_step,
)
from speechbrain_kd.pipeline_options import (
    count_at_least,
    export_formats,
    parse_extra,
    run_option,
    seed_list,
    yaml_mapping,
    yes_or_no,
)
from speechbrain_kd.presets import (
    check_overrides,
    load_preset,
    phase_keys,
    phase_model,
    setting_sources,
)
from speechbrain_kd.reference import evaluate_linear_reference
from speechbrain_kd.soft_labels import check_teacher_view
from speechbrain_kd.stamps import data_fingerprint
from speechbrain_kd.summaries import (
    STUDENT_ROWS,
    folds_table,
    pipeline_summary,
    print_table,
    seeds_table,
    summarize_seeds,
)

RECIPE = Path(__file__).resolve().parent
HPARAMS = RECIPE / "hparams"
SPLITS = ("train", "valid", "test")
PHASE_YAMLS = {
    "baseline": "baseline.yaml",
    "specialist": "specialist.yaml",
    "ensemble": "ensemble.yaml",
    "distill": "distill.yaml",
}


class Pipeline:
    """Run the phases in order, skipping the ones already complete."""

    def __init__(self, args, overrides, run_opts):
        self.args = args
        self.run_opts = run_opts
        # Resolved: a folder named through a symbolic link is the same run.
        self.output = Path(args.output_folder).resolve()
        self.data_folder = Path(args.data_folder).resolve()
        self.keys = phase_keys(HPARAMS, PHASE_YAMLS)
        self.preset = load_preset(args.preset, HPARAMS, self.keys)
        self.preset_name = args.preset
        check_overrides(overrides, self.keys)
        self.overrides = overrides
        self.student_model = args.student_model
        self.student_model_options = args.student_model_options
        self.controls = getattr(args, "controls", True)
        self.min_pair_errors = getattr(args, "min_pair_errors", 0)
        self.ranking_folds = getattr(args, "ranking_folds", None)
        self.export_formats = getattr(args, "export_formats", None)
        self.max_model_bytes = getattr(args, "max_model_bytes", None)
        if self.max_model_bytes is not None and not self.export_formats:
            raise SystemExit(
                "--max_model_bytes holds an exported student: give "
                "--export_formats too (e.g. --export_formats=int8)"
            )
        self.processes = getattr(args, "nproc_per_node", 1)
        if self.processes < 1:
            raise SystemExit(
                f"--nproc_per_node={self.processes}: give 1 or more"
            )
        for family in (overrides.get("model"), args.student_model):
            if family is not None and family not in known_families():
                raise SystemExit(
                    f"unknown model family {family!r}; known: "
                    f"{', '.join(known_families())}"
                )
        self.phases = PhaseRunner(
            RECIPE / "train.py", self.manifests(), run_opts, self.processes
        )
        self.timings = {}

    def model_of(self, phase):
        """The model family and options of a phase (``None`` if it has none).

        Teachers (baseline, specialists) use ``--model`` and
        ``--model_options``; the student uses ``--student_model`` and
        ``--student_model_options`` where given, else the same
        (:func:`~speechbrain_kd.presets.phase_model`).
        """
        own = (None, None)
        if phase == "distill":
            own = (self.student_model, self.student_model_options)
        return phase_model(
            HPARAMS / PHASE_YAMLS[phase],
            self.preset,
            phase,
            self.overrides,
            own,
        )

    def phase_overrides(self, phase_yaml, phase, **extra):
        """Preset, then command line, then the phase's wiring."""
        keys = self.keys[phase]
        merged = {}
        for source in setting_sources(self.preset, phase, self.overrides):
            merged.update({k: v for k, v in source.items() if k in keys})
        model = self.model_of(phase)
        if model is not None:
            merged.update(model=model[0], model_options=model[1])
        merged.update(
            data_folder=str(self.data_folder),
            prepare_folder=str(self.output / "manifests"),
        )
        merged.update(extra)
        return merged

    def manifests(self):
        """The manifests every phase trains and tests on."""
        return [self.output / "manifests" / f"{s}.csv" for s in SPLITS]

    def prepare_data(self):
        """Rebuild the manifests from the data, before any stamp is read.

        Each phase's stamp holds the fingerprint of the manifests (and of
        the audio they list) it was made from: a clip removed or relabelled
        since then makes it, and every phase after it, run again.
        """
        settings = preview_hparams(
            HPARAMS / "baseline.yaml",
            self.phase_overrides(
                "baseline.yaml",
                "baseline",
                output_folder=str(self.output / "baseline"),
            ),
        )
        try:
            prepare_data(settings, prepare_from_settings, "scene")
            return data_fingerprint(self.manifests())
        except DataPreparationError as error:  # bad data, named by it
            raise SystemExit(f"[pipeline] {error}") from None
        except (ValueError, OSError) as error:
            raise SystemExit(f"[pipeline] data preparation: {error}") from None

    def run_phase(self, name, phase_yaml, **extra):
        """Run ``train.py <phase_yaml>`` unless it already finished.

        ``extra``: its settings set from the phases before it (its inputs,
        see :meth:`~speechbrain_kd.phase_runner.PhaseRunner.run`).
        """
        phase = name.split(":")[0]
        overrides = self.phase_overrides(phase_yaml, phase, **extra)
        self.timings[name] = self.phases.run(
            name, HPARAMS / phase_yaml, overrides, wiring=extra
        )
        return Path(overrides["output_folder"])

    def check_student(self):
        """Refuse the student's settings at once: a teacher view the phase
        cannot give, a student over ``--max_params``/``--max_macs``.

        The distill phase checks too, but only after the teachers have
        trained; this reads (and for the limits builds) the student first.
        """
        overrides = self.phase_overrides("distill.yaml", "distill")
        settings = preview_hparams(
            HPARAMS / "distill.yaml",
            dict(
                overrides,
                output_folder=str(self.output / "student"),
                teacher_folders=[],
                init_from=None,
            ),
        )
        try:
            check_teacher_view(settings)
            if all(overrides.get(name) is None for name in LIMIT_SETTINGS):
                return
            report = check_phase_limits(settings, settings_scenes)
        except SettingError as error:
            raise SystemExit(f"[pipeline] {error}") from None
        if report is not None:
            print(
                f"[pipeline] student within the limits: "
                f"{describe_complexity(report)}",
                flush=True,
            )

    def seed(self):
        """The seed every phase of this run is given."""
        return self.phase_overrides("baseline.yaml", "baseline").get(
            "seed", written_settings(HPARAMS / "baseline.yaml")["seed"]
        )

    def train_baseline(self, name="baseline"):
        """Prepare the manifests and train the baseline; its folder."""
        self.data = self.prepare_data()
        return self.run_phase(
            name, "baseline.yaml", output_folder=str(self.output / "baseline")
        )

    def ranking_views(self):
        """The data views of the ``--ranking_folds`` baselines ([] without).

        Written before any training, so that a K above the number of
        training locations is refused at once.
        """
        if not self.ranking_folds:
            return []
        try:
            return write_fold_views(
                self.data_folder,
                self.output / "pair_ranking" / "folds",
                self.ranking_folds,
                seed=self.seed(),
                training_only=True,
            )
        except (ValueError, FileNotFoundError) as error:
            raise SystemExit(
                f"[pipeline] --ranking_folds={self.ranking_folds}: {error}"
            ) from None

    def out_of_fold_results(self, views):
        """The ``test_results.json`` of one baseline per ranking view.

        Each trains (and picks its checkpoint on a validation split drawn)
        inside K-1 folds of the training clips, grouped by location, and is
        tested on the fold it left out: their summed confusion matrix holds
        every training clip once, so the pairs are ranked from all of them
        instead of the validation split, and never from the test split.
        """
        top = self.output / "pair_ranking"
        results = []
        for fold, view in enumerate(views, start=1):
            args = dict(
                vars(self.args),
                data_folder=str(view),
                output_folder=str(top / f"fold{fold}"),
            )
            inner = Pipeline(
                argparse.Namespace(**args), self.overrides, self.run_opts
            )
            name = f"baseline:ranking fold {fold} of {len(views)}"
            folder = inner.train_baseline(name)
            self.timings[name] = inner.timings[name]
            results.append(folder / "test_results.json")
        return results

    def rank_pairs(self, baseline, ranking_views=()):
        """Phase 2: the confusing pairs that get a specialist.

        Ranked on the baseline's validation split or, given the views of
        ``--ranking_folds``, on the out-of-fold predictions over the
        training clips (``confusing_pairs.json`` and the log say which).
        """
        top_k = self.overrides.get(
            "top_k_pairs",
            self.preset.get("specialist", {}).get(
                "top_k_pairs",
                written_settings(HPARAMS / "specialist.yaml")["top_k_pairs"],
            ),
        )
        command = [
            sys.executable,
            str(RECIPE / "find_confusing_pairs.py"),
            str(baseline),
            f"--top_k={top_k}",
            f"--min_pair_errors={self.min_pair_errors}",
        ]
        if ranking_views:
            results = self.out_of_fold_results(ranking_views)
            command += ["--fold_results", *map(str, results)]
        start = time.time()
        run_step("confusing pairs", command)
        self.timings["confusing_pairs"] = time.time() - start
        ranked = read_confusing_pairs(baseline / "confusing_pairs.json")
        return [list(p["pair"]) for p in ranked]

    def run(self):
        """All phases, the summary table and ``summary.json``."""
        self.check_student()
        ranking_views = self.ranking_views()
        baseline = self.train_baseline()
        out = self.output
        pairs = self.rank_pairs(baseline, ranking_views)
        reference = self.run_reference(baseline)
        specialists = []
        for pair in pairs:
            folder = self.run_phase(
                "specialist:" + "-".join(pair),
                "specialist.yaml",
                output_folder=str(out / "specialists" / "-".join(pair)),
                init_from=str(baseline),
                target_pair=pair,
            )
            specialists.append(folder)
        unused = self.unused_specialists(specialists)
        teachers = [str(baseline)] + [str(f) for f in specialists]
        ensemble = self.run_phase(
            "ensemble",
            "ensemble.yaml",
            output_folder=str(out / "ensemble"),
            teacher_folders=teachers,
        )
        # The student starts from the baseline when it has its architecture.
        same_model = self.model_of("distill") == self.model_of("baseline")
        if not same_model:
            print(
                "[pipeline] distill: the student's model differs from the "
                "baseline's, so it starts from scratch",
                flush=True,
            )
        init_from = str(baseline) if same_model else None
        student = self.run_phase(
            "distill",
            "distill.yaml",
            output_folder=str(out / "student"),
            teacher_folders=teachers,
            init_from=init_from,
        )
        controls = (
            self.run_controls(baseline, init_from) if self.controls else {}
        )
        summary = self.summarize(
            baseline, pairs, specialists, ensemble, student, reference, controls
        )
        if unused:
            summary["unused_specialists"] = [str(f) for f in unused]
        if self.export_formats:
            summary["export"] = self.export_student(student)
        if unused or self.export_formats:
            write_json_atomic(self.output / "summary.json", summary)
        return summary

    def unused_specialists(self, specialists):
        """Say which specialist folders hold pairs the ranking no longer
        gives (the data or the baseline changed): kept, never used."""
        folder = self.output / "specialists"
        current = {Path(f).resolve() for f in specialists}
        unused = sorted(
            f
            for f in (folder.iterdir() if folder.is_dir() else [])
            if f.is_dir() and f.resolve() not in current
        )
        if unused:
            print(
                f"[pipeline] specialists: {', '.join(f.name for f in unused)}"
                f" in {folder} hold pairs this run's ranking does not give;"
                " left as they are and not used (summary.json:"
                " unused_specialists)",
                flush=True,
            )
        return unused

    def export_student(self, student):
        """Export the student in ``--export_formats``, verified on the test
        clips against the trained model and held to the limits; the
        figures of each format (``export.json``) for the summary."""
        from speechbrain_kd.export import EXPORT_INFO_FILE, export_model
        from speechbrain_kd.export_formats import format_table

        start = time.time()
        folder = self.output / "export"
        limits = self.phase_overrides("distill.yaml", "distill")
        try:
            export_model(
                student,
                folder,
                overwrite=True,
                formats=self.export_formats,
                verify=self.output / "manifests" / "test.csv",
                max_params=limits.get("max_params"),
                max_macs=limits.get("max_macs"),
                max_model_bytes=self.max_model_bytes,
            )
        except (FileNotFoundError, RuntimeError, ValueError) as error:
            raise SystemExit(f"[pipeline] export: {error}") from None
        self.timings["export"] = time.time() - start
        info = json.loads((folder / EXPORT_INFO_FILE).read_text())
        print(f"\nthe student exported to {folder}:\n{format_table(info)}")
        return {"folder": str(folder), **info}

    def run_controls(self, baseline, init_from):
        """The student's network, initialisation and schedule without the
        specialists (``kd_baseline``: distilled from the baseline alone, the
        step before the paper's, Heo et al. 2019) and without any teacher
        (``control``: the true labels alone). Both keep the student's
        settings; the control's one teacher is only there to satisfy the
        phase, its soft labels weigh 0 (``hard_label_weight: 1``)."""
        own_settings = {
            "kd_baseline": {},
            "control": {"hard_label_weight": 1.0},
        }
        return {
            name: self.run_phase(
                f"distill:{name}",
                "distill.yaml",
                output_folder=str(self.output / name),
                teacher_folders=[str(baseline)],
                init_from=init_from,
                **settings,
            )
            for name, settings in own_settings.items()
        }

    def run_reference(self, baseline):
        """The linear reference on the baseline's manifests, at its rate."""
        start = time.time()
        rate = (
            self.phase_overrides("baseline.yaml", "baseline").get("sample_rate")
            or written_settings(HPARAMS / "baseline.yaml")["sample_rate"]
        )
        labels = json.loads((baseline / "test_results.json").read_text())[
            "labels"
        ]
        folder = self.output / "reference"
        results = evaluate_linear_reference(
            self.output / "manifests",
            rate,
            labels,
            folder / "test_results.json",
        )
        self.timings["reference"] = time.time() - start
        print(
            f"[pipeline] linear reference: {100 * results['accuracy']:.2f}% "
            f"(C={results['C']}, {folder})",
            flush=True,
        )
        return folder

    def summarize(
        self,
        baseline,
        pairs,
        specialists,
        ensemble,
        student,
        reference,
        controls=None,
    ):
        """Write ``summary.json`` and its plots, print its tables.

        ``controls`` maps ``kd_baseline`` and ``control`` (where they ran)
        to their folders: rows beside the student's.
        """
        seed = self.seed()
        summary = pipeline_summary(
            {
                "preset": self.preset_name,
                "data_folder": str(self.data_folder),
                # What every phase below was made from (their stamps agree).
                "data": self.data,
            },
            {
                "reference": reference,
                "baseline": baseline,
                "ensemble": ensemble,
                "student": student,
                **(controls or {}),
            },
            dict(zip(map(tuple, pairs), specialists, strict=True)),
            self.timings,
            seed,
            self.output,
        )
        print_table(summary)
        print(f"\n{comparisons_table(summary['comparisons'])}")
        return summary


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
        help="paper (the published configuration) or demo (default)",
    )
    parser.add_argument(
        "--student_model",
        default=None,
        help="the student's model family (default: that of --model)",
    )
    parser.add_argument(
        "--student_model_options",
        default=None,
        type=yaml_mapping,
        help='the student\'s model options, e.g. "{n_mels: 40}"',
    )
    parser.add_argument(
        "--controls",
        default=True,
        type=yes_or_no,
        help="also train the student's controls: kd_baseline (distilled "
        "from the baseline alone) and control (true labels only); "
        "default True",
    )
    parser.add_argument(
        "--min_pair_errors",
        default=0,
        type=count_at_least(0),
        help="a pair of scenes the baseline confused fewer times (both ways, "
        "on the split that ranks them) gets no specialist; default 0",
    )
    parser.add_argument(
        "--ranking_folds",
        default=None,
        type=count_at_least(2),
        help="K: rank the confusing pairs on the out-of-fold predictions "
        "of K more baselines over the training clips (K-fold, grouped by "
        "location) instead of the validation split; default: validation",
    )
    parser.add_argument(
        "--folds",
        default=None,
        type=count_at_least(2),
        help="K: run the pipeline once per fold of a K-fold split of the "
        "clips grouped by location (every clip tested once) and report "
        "every row and comparison over all clips (folds_summary.json)",
    )
    parser.add_argument(
        "--export_formats",
        default=None,
        type=export_formats,
        help="e.g. onnx,int8: export the student in these formats as the "
        "last step, verified on the test clips (figures in summary.json)",
    )
    parser.add_argument(
        "--max_model_bytes",
        default=None,
        type=int,
        help="limit on the exported student's parameter bytes at the "
        "precision it is stored in (DCASE: 128000 at int8)",
    )
    parser.add_argument(
        "--nproc_per_node",
        type=int,
        default=1,
        help="processes per phase (torchrun on this machine; add "
        "--distributed_backend=gloo on CPUs)",
    )
    parser.add_argument(
        "--seeds",
        default=None,
        type=seed_list,
        help="e.g. 1,2,3: one pipeline per seed in <output_folder>/seed_<N>, "
        "then the mean and spread over them (seeds_summary.json)",
    )
    args, extra = parser.parse_known_args(argv)
    overrides, run_opts = parse_extra(extra)
    if args.seeds and "seed" in overrides:
        raise SystemExit("give --seeds or --seed, not both")
    try:
        # Before any stamp: a rerun without the option must find none.
        check_device(run_option(run_opts, "device"))
    except SettingError as error:
        raise SystemExit(str(error)) from None
    try:
        with (
            one_line_faults(args.output_folder),
            sole_writer(Path(args.output_folder).resolve()),
        ):
            if args.data_folder is None:
                from speechbrain_kd.demo_data import generate_demo_dataset

                args.data_folder = str(Path(args.output_folder) / "demo_data")
                generate_demo_dataset(args.data_folder)
            args.preset = args.preset or "demo"
            if args.folds:
                run_folds(args, overrides, run_opts)
            elif args.seeds:
                run_seeds(args, overrides, run_opts)
            else:
                Pipeline(args, overrides, run_opts).run()
    except PhaseFailed as failure:
        print(failure, file=sys.stderr)
        raise SystemExit(1) from None
    # In use; not a demo set; a setting or phase refused before it ran.
    except (FolderInUse, FileExistsError, SettingError, PhaseRefused) as error:
        raise SystemExit(str(error)) from None


def run_seeds(args, overrides, run_opts):
    """One pipeline per seed, then ``seeds_summary.json`` and its table."""
    top = Path(args.output_folder).resolve()
    summaries = {}
    for seed in args.seeds:
        print(f"[pipeline] seed {seed}", flush=True)
        run_args = argparse.Namespace(
            **dict(vars(args), output_folder=str(top / f"seed_{seed}"))
        )
        summaries[seed] = Pipeline(
            run_args, dict(overrides, seed=seed), run_opts
        ).run()
    table = summarize_seeds(summaries)
    table["comparisons"] = summary_comparisons(summaries)
    write_json_atomic(top / "seeds_summary.json", table)
    text = f"{seeds_table(table)}\n\n{comparisons_table(table['comparisons'])}"
    (top / "seeds_table.md").write_text(text + "\n", encoding="utf-8")
    print(f"\n{text}\n")
    for claim, seeds in table["orderings"].items():
        print(f"{claim}: {seeds} of {len(args.seeds)} seeds")
    return table


def run_folds(args, overrides, run_opts):
    """One pipeline per fold (and seed), then ``folds_summary.json``.

    The folds are views of the data folder (``<output_folder>/folds``,
    :func:`speechbrain_kd.folds.write_fold_views`) grouped by location; the
    rows and comparisons pool every fold's test clips, each clip once per
    seed.
    """
    top = Path(args.output_folder).resolve()
    split_seed = overrides.get(
        "seed", written_settings(HPARAMS / "baseline.yaml")["seed"]
    )
    try:
        views = write_fold_views(
            args.data_folder, top / "folds", args.folds, seed=split_seed
        )
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"[pipeline] --folds={args.folds}: {error}") from None
    summaries = {}
    for seed in args.seeds or [None]:
        for fold, view in enumerate(views, start=1):
            where = f"fold{fold}" if seed is None else f"seed_{seed}/fold{fold}"
            print(f"[pipeline] {where.replace('/', ', ')}", flush=True)
            run_args = argparse.Namespace(
                **dict(
                    vars(args),
                    output_folder=str(top / where),
                    data_folder=str(view),
                )
            )
            run_overrides = (
                overrides if seed is None else dict(overrides, seed=seed)
            )
            key = fold if seed is None else (seed, fold)
            summaries[key] = Pipeline(run_args, run_overrides, run_opts).run()
    table = {
        "folds": args.folds,
        "seeds": args.seeds,
        "models": {
            row: pooled_accuracy(summaries, row)
            for row in ("reference", "baseline", "ensemble", *STUDENT_ROWS)
            if all(row in summary for summary in summaries.values())
        },
        "specialists": {
            str(key): summary["specialists"]
            for key, summary in summaries.items()
        },
        "comparisons": fold_comparisons(summaries, top / "folds" / FOLDS_FILE),
    }
    write_json_atomic(top / "folds_summary.json", table)
    comparisons = comparisons_table(table["comparisons"], runs="folds")
    text = f"{folds_table(table)}\n\n{comparisons}"
    (top / "folds_table.md").write_text(text + "\n", encoding="utf-8")
    print(f"\n{text}\n")
    return table


if __name__ == "__main__":
    main()
