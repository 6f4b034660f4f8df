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
"""

import argparse
import hashlib
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from speechbrain_kd.comparisons import comparisons_table, summary_comparisons
from speechbrain_kd.complexity import (
    COMPLEXITY_FILE,
    LIMIT_SETTINGS,
    describe_complexity,
)
from speechbrain_kd.environment import check_device, one_line_faults
from speechbrain_kd.experiment import FolderInUse, sole_writer
from speechbrain_kd.files import write_json_atomic
from speechbrain_kd.hparams_preview import (
    SettingError,
    check_settings,
    preview_hparams,
    unknown_key_message,
    yaml_keys,
)
from speechbrain_kd.models import family_overrides, known_families
from speechbrain_kd.pairs import read_confusing_pairs
from speechbrain_kd.plots import plot_confusion_matrices
from speechbrain_kd.reference import evaluate_linear_reference
from speechbrain_kd.stamps import (
    clear_phase_folder,
    data_fingerprint,
    input_changes,
    other_settings,
    phase_inputs,
    setting_changes,
    settings_record,
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
# Sections of a preset besides the phases: "all" (every phase that has the
# key) and "models" (the options of each model family).
PRESET_SECTIONS = ("all", "models", *PHASE_YAMLS)
# What prepares the manifests all phases share: one value for all of them,
# so that no phase rebuilds the manifests from another split of the data.
DATA_SETTINGS = (
    "valid_ratio",
    "seed",
    "skip_bad_files",
    "train_subset",
    "split_setup_folder",
)
logger = logging.getLogger("pipeline")


class PhaseFailed(Exception):
    """A phase's script ended with an error (its own message is shown)."""


def yaml_default(hparams_file, key):
    """The value a HyperPyYAML file gives a plain top-level ``key``."""
    text = Path(hparams_file).read_text(encoding="utf-8")
    found = re.search(rf"^{key}:[ \t]*([^#\n]*)", text, flags=re.MULTILINE)
    return yaml.safe_load(found.group(1)) if found else None


def phase_keys():
    """``{phase: its top-level keys}`` for every phase YAML."""
    return {
        phase: yaml_keys(HPARAMS / name) for phase, name in PHASE_YAMLS.items()
    }


def check_preset(preset, path):
    """Refuse a preset section or key that no phase reads.

    Example
    -------
    >>> check_preset({"all": {"batch_size": 8}}, "p.yaml")
    >>> check_preset({"distill": {"top_k_pairs": 2}}, "p.yaml")
    Traceback (most recent call last):
    ...
    SystemExit: p.yaml[distill]: 'top_k_pairs' is not a setting of ...
    >>> check_preset({"distill": {"valid_ratio": 0.2}}, "p.yaml")
    Traceback (most recent call last):
    ...
    SystemExit: p.yaml[distill]: valid_ratio prepares the data that every \
phase shares: give it under 'all'
    """
    keys = phase_keys()
    for section, values in preset.items():
        if section not in PRESET_SECTIONS:
            raise SystemExit(
                f"{path}: unknown section {section!r}; a preset has "
                f"{', '.join(PRESET_SECTIONS)}"
            )
        if not isinstance(values, dict):
            raise SystemExit(f"{path}[{section}] must be a mapping")
        if section == "models":
            for family, options in values.items():
                try:
                    family_overrides(family, options)
                except ValueError as error:
                    raise SystemExit(f"{path}[models]: {error}") from None
            continue
        known = (
            set().union(*keys.values()) if section == "all" else keys[section]
        )
        for key in values:
            if section != "all" and key in DATA_SETTINGS:
                raise SystemExit(
                    f"{path}[{section}]: {key} prepares the data that every "
                    "phase shares: give it under 'all'"
                )
            if key not in known:
                where = "any phase" if section == "all" else section
                raise SystemExit(
                    f"{path}[{section}]: "
                    + unknown_key_message(key, known, where)
                )


def load_preset(name):
    """Read and check ``hparams/presets/<name>.yaml`` (see ``check_preset``)."""
    path = HPARAMS / "presets" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (HPARAMS / "presets").glob("*.yaml"))
        raise SystemExit(f"unknown preset {name!r}; choose one of {known}")
    with open(path, encoding="utf-8") as f:
        preset = yaml.safe_load(f) or {}
    check_preset(preset, path)
    return preset


def check_overrides(overrides):
    """Refuse a command-line setting that no phase has (a typo, say)."""
    known = set().union(*phase_keys().values())
    for key in overrides:
        if key not in known:
            raise SystemExit(
                f"--{key}: " + unknown_key_message(key, known, "any phase")
            )
    try:
        check_settings(overrides, "the command line")
    except SettingError as error:
        raise SystemExit(str(error)) from None


def _copy_stream(source, sink, tail):
    """Copy a child's output to ours as it comes; keep its last bytes."""
    while chunk := os.read(source.fileno(), 65536):
        sink.buffer.write(chunk)
        sink.flush()
        tail[0] = (tail[0] + chunk)[-20000:]


def run_step(name, command, log_file=None, cwd=None):
    """Run one step's script; on failure raise :class:`PhaseFailed`.

    Its output goes to the console as it comes; the last lines of it are
    kept so that the failure names the step's own error (SpeechBrain logs
    a phase's uncaught exception to standard output).
    """
    process = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    tails = {"stdout": [b""], "stderr": [b""]}
    copiers = [
        threading.Thread(
            target=_copy_stream,
            args=(getattr(process, name), getattr(sys, name), tails[name]),
        )
        for name in tails
    ]
    for copier in copiers:
        copier.start()
    for copier in copiers:
        copier.join()
    process.wait()
    if process.returncode == 0:
        return
    text = b"\n".join(tail[0] for tail in tails.values())
    lines = [
        line.strip()
        for line in text.decode(errors="replace").splitlines()
        if line.strip()
    ]
    errors = [line for line in lines if re.match(r"^[\w.]+(Error|Exit)", line)]
    message = (errors or lines or ["(no message)"])[-1]
    where = f"\n  its log: {log_file}" if log_file else ""
    raise PhaseFailed(
        f"[pipeline] {name} failed (exit code {process.returncode}): "
        f"{message}{where}"
    )


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
        "ckpt_interval_steps",
        "ckpt_interval_minutes",
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
        # Resolved: a folder named through a symbolic link is the same run.
        self.output = Path(args.output_folder).resolve()
        self.data_folder = Path(args.data_folder).resolve()
        self.preset = load_preset(args.preset)
        self.preset_name = args.preset
        check_overrides(overrides)
        self.overrides = overrides
        self.run_opts = run_opts
        self.student_model = args.student_model
        self.student_model_options = args.student_model_options
        self.controls = getattr(args, "controls", True)
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
        self.timings = {}

    def setting_sources(self, phase):
        """Preset ``all``, the preset's phase section, the command line."""
        return (
            self.preset.get("all", {}),
            self.preset.get(phase, {}),
            self.overrides,
        )

    def model_of(self, phase):
        """The model family and options of a phase (``None`` if it has none).

        Teachers (baseline, specialists) use ``--model`` and
        ``--model_options``; the student uses ``--student_model`` and
        ``--student_model_options`` where given, else the same. A preset's
        ``models`` section gives each family's options, which the command
        line's update.
        """
        yaml_file = HPARAMS / PHASE_YAMLS[phase]
        if "model" not in yaml_keys(yaml_file):
            return None
        *preset_sections, command_line = self.setting_sources(phase)
        family = yaml_default(yaml_file, "model")
        options = {}
        for source in preset_sections:
            family = source.get("model") or family
            options.update(source.get("model_options") or {})
        family = command_line.get("model") or family
        given = self.overrides.get("model_options") or {}
        student_own = phase == "distill" and (
            self.student_model or self.student_model_options
        )
        if student_own:
            family = self.student_model or family
            given = self.student_model_options or {}
        options = {
            **self.preset.get("models", {}).get(family, {}),
            **options,
            **given,
        }
        try:
            family_overrides(family, options)
        except ValueError as error:
            raise SystemExit(f"{phase}: {error}") from None
        return family, options

    def phase_overrides(self, phase_yaml, phase, **extra):
        """Preset, then command line, then the phase's wiring."""
        keys = yaml_keys(HPARAMS / phase_yaml)
        merged = {}
        for source in self.setting_sources(phase):
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
        from train import prepare_data

        settings = preview_hparams(
            HPARAMS / "baseline.yaml",
            self.phase_overrides(
                "baseline.yaml",
                "baseline",
                output_folder=str(self.output / "baseline"),
            ),
        )
        try:
            prepare_data(settings)
            return data_fingerprint(self.manifests())
        except SystemExit as error:  # bad data, named by the preparation
            raise SystemExit(f"[pipeline] {error}") from None
        except (ValueError, OSError) as error:
            raise SystemExit(f"[pipeline] data preparation: {error}") from None

    def run_phase(self, name, phase_yaml, done_file, **extra):
        """Run ``train.py <phase_yaml>`` unless it already finished.

        A finished phase is skipped while its settings and its inputs (the
        data, the checkpoints of the phases it reads) are those of its
        stamp; other settings are refused, other inputs train it again.
        """
        phase = name.split(":")[0]
        overrides = self.phase_overrides(phase_yaml, phase, **extra)
        folder = Path(overrides["output_folder"])
        # The phases it reads (extra: set from the phases before) are its
        # inputs, not its settings: other teachers train it again.
        wiring = set(extra)
        # The check train.py makes: a folder trained by hand with other
        # settings is refused before the stamp is written into it.
        refusal = other_settings(
            folder,
            settings_record(HPARAMS / phase_yaml, overrides),
            ignore=wiring,
        )
        if refusal:
            raise SystemExit(
                f"{refusal}; use another --output_folder or delete it"
            )
        stamp = folder / "pipeline_phase.json"
        settings = {
            "hparams": phase_yaml,
            "overrides": overrides,
            "run_opts": self.run_opts,
        }
        if self.processes > 1:  # a stamp of one process stays as it was
            settings["processes"] = self.processes
        own = {k: v for k, v in overrides.items() if k not in wiring}
        digest = hashlib.sha256(
            json.dumps(dict(settings, overrides=own), sort_keys=True).encode()
        ).hexdigest()
        read = [overrides.get("init_from")]
        read += overrides.get("teacher_folders") or []
        try:
            inputs = phase_inputs(self.manifests(), [f for f in read if f])
        except (FileNotFoundError, ValueError) as error:  # a teacher gone
            raise SystemExit(f"[pipeline] {name}: {error}") from None
        finished = (folder / done_file).is_file()
        if stamp.is_file():
            previous = json.loads(stamp.read_text())
            if previous.get("digest") != digest:
                state = "a finished" if finished else "an interrupted"
                raise SystemExit(
                    f"{folder} holds {state} {name} made with other "
                    f"settings ({changed_settings(previous, settings)}); "
                    "use another --output_folder or delete it"
                )
            changes = input_changes(previous.get("inputs"), inputs)
            if changes:
                print(
                    f"[pipeline] {name}: its inputs changed since it ran "
                    f"({'; '.join(changes)}): running it again from scratch "
                    f"({folder})",
                    flush=True,
                )
                with sole_writer(folder):
                    clear_phase_folder(folder)
            elif finished and previous.get("seconds") is not None:
                print(f"[pipeline] {name}: complete, skipped ({folder})")
                self.timings[name] = previous["seconds"]
                return folder
        # Written first, so that an interrupted phase is known by its settings.
        record = {"digest": digest, "settings": settings, "inputs": inputs}
        write_json_atomic(stamp, {**record, "seconds": None})
        command = [sys.executable]
        if self.processes > 1:  # torchrun, one node
            command += [
                "-m",
                "torch.distributed.run",
                "--standalone",
                f"--nproc_per_node={self.processes}",
            ]
        command.append(str(RECIPE / "train.py"))
        command.append(str(HPARAMS / phase_yaml))
        command += [f"--{k}={json.dumps(v)}" for k, v in overrides.items()]
        command += self.run_opts
        print(f"[pipeline] {name}: {' '.join(command)}", flush=True)
        start = time.time()
        run_step(name, command, log_file=folder / "log.txt", cwd=RECIPE)
        seconds = time.time() - start
        self.timings[name] = seconds
        write_json_atomic(stamp, {**record, "seconds": seconds})
        return folder

    def check_student_limits(self):
        """Refuse a student over ``--max_params``/``--max_macs`` at once.

        The distill phase checks too, but only after the teachers have
        trained; this builds the student from its settings first.
        """
        overrides = self.phase_overrides("distill.yaml", "distill")
        if all(overrides.get(name) is None for name in LIMIT_SETTINGS):
            return
        from train import check_phase_limits

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
            report = check_phase_limits(settings)
        except SettingError as error:
            raise SystemExit(f"[pipeline] {error}") from None
        if report is not None:
            print(
                f"[pipeline] student within the limits: "
                f"{describe_complexity(report)}",
                flush=True,
            )

    def run(self):
        """All phases, the summary table and ``summary.json``."""
        self.check_student_limits()
        self.data = self.prepare_data()
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
        run_step(
            "confusing pairs",
            [
                sys.executable,
                str(RECIPE / "find_confusing_pairs.py"),
                str(baseline),
                f"--top_k={top_k}",
            ],
        )
        self.timings["confusing_pairs"] = time.time() - start
        reference = self.run_reference(baseline)
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
            "test_results.json",
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
        if self.export_formats:
            summary["export"] = self.export_student(student)
            write_json_atomic(self.output / "summary.json", summary)
        return summary

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
                "test_results.json",
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
        rate = self.phase_overrides("baseline.yaml", "baseline").get(
            "sample_rate"
        ) or yaml_default(HPARAMS / "baseline.yaml", "sample_rate")
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
        """Write ``summary.json`` and the side-by-side confusion plot.

        ``controls`` maps ``kd_baseline`` and ``control`` (where they ran)
        to their folders: rows beside the student's.
        """

        def results(folder):
            with open(Path(folder) / "test_results.json") as f:
                return json.load(f)

        base = results(baseline)
        summary = {
            "preset": self.preset_name,
            "data_folder": str(self.data_folder),
            # What every phase below was made from (their stamps agree).
            "data": self.data,
            "labels": base["labels"],
            "reference": phase_entry(results(reference), reference),
            "baseline": phase_entry(base, baseline),
            "ensemble": phase_entry(results(ensemble), ensemble),
            "student": phase_entry(results(student), student),
            **{
                name: phase_entry(results(folder), folder)
                for name, folder in (controls or {}).items()
            },
            "specialists": [],
            "phase_seconds": self.timings,
        }
        matrices = {
            "linear reference": summary["reference"]["confusion_matrix"],
            "baseline": base["confusion_matrix"],
        }
        highlights = {}
        for pair, folder in zip(pairs, specialists, strict=True):
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
        for name in STUDENT_ROWS:
            if name in summary:
                matrices[name] = summary[name]["confusion_matrix"]
        plot = self.output / "confusion_matrices.png"
        plot_confusion_matrices(
            matrices, base["labels"], plot, highlight_pairs=highlights
        )
        summary["confusion_plot"] = str(plot)
        for entry in ("reference", "baseline", "ensemble", *STUDENT_ROWS):
            if entry in summary:
                summary[entry].pop("confusion_matrix")
        seed = self.phase_overrides("baseline.yaml", "baseline").get(
            "seed", yaml_default(HPARAMS / "baseline.yaml", "seed")
        )
        summary["comparisons"] = summary_comparisons({seed: summary})
        write_json_atomic(self.output / "summary.json", summary)
        print_table(summary)
        print(f"\n{comparisons_table(summary['comparisons'])}")
        return summary


# The rows trained like the student: its controls, then the student itself.
STUDENT_ROWS = ("kd_baseline", "control", "student")
ROW_NAMES = {
    "kd_baseline": "kd_baseline (from the baseline alone)",
    "control": "control (true labels only)",
}


def changed_settings(previous, settings):
    """The settings that differ between a phase's stamp and this run.

    Example
    -------
    >>> changed_settings(
    ...     {"settings": {"overrides": {"lr": 0.1, "seed": 1}}},
    ...     {"overrides": {"lr": 0.2, "seed": 1}})
    'lr: 0.1 then, 0.2 now'
    """

    def flat(stamped):
        parts = ("hparams", "run_opts", "processes")
        return {
            **{part: stamped.get(part) for part in parts},
            **(stamped.get("overrides") or {}),
        }

    changes = setting_changes(
        flat(previous.get("settings", {})), flat(settings)
    )
    return "; ".join(changes) or "a stamp of another format"


def phase_entry(results, folder):
    """The part of a phase's results that the summary keeps.

    The test accuracy and confusion matrix, and the model's size and cost
    (``complexity.json``, written by every phase of ``train.py``), and the
    accuracy per device and city where the results have it.
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


def summarize_seeds(summaries):
    """Mean and spread over seeds of every row of the pipeline's summary.

    Specialists are matched by rank (the most confused pair first): the
    pairs are chosen per seed, so the same rank can name other scenes.
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
    for rank in range(min(len(run["specialists"]) for run in runs)):
        specs = [run["specialists"][rank] for run in runs]
        specialists.append(
            {
                "rank": rank + 1,
                "pairs": ["/".join(spec["pair"]) for spec in specs],
                "accuracy": mean_and_spread([s["accuracy"] for s in specs]),
                "pair_errors": mean_and_spread(
                    [s["pair_errors"] for s in specs]
                ),
                "baseline_pair_errors": mean_and_spread(
                    [s["baseline_pair_errors"] for s in specs]
                ),
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
    >>> print(seeds_table({"seeds": [1, 2], "models": {
    ...     "reference": row, "baseline": row, "ensemble": row,
    ...     "control": row, "student": row}, "specialists": [],
    ...     "orderings": {}}))
    ... # doctest: +NORMALIZE_WHITESPACE
    | model (2 seeds: 1, 2) | test accuracy | errors in its pair (baseline's) |
    |---|---|---|
    | linear reference (log-mel statistics) | 75.0 ± 5.0 % | |
    | baseline | 75.0 ± 5.0 % | |
    | ensemble | 75.0 ± 5.0 % | |
    | control (true labels only) | 75.0 ± 5.0 % | |
    | student | 75.0 ± 5.0 % | |
    """

    def percent(entry):
        return f"{100 * entry['mean']:.1f} ± {100 * entry['std']:.1f} %"

    def count(entry):
        return f"{entry['mean']:.1f} ± {entry['std']:.1f}"

    seeds = ", ".join(map(str, table["seeds"]))
    lines = [
        f"| model ({len(table['seeds'])} seeds: {seeds}) | test accuracy "
        "| errors in its pair (baseline's) |",
        "|---|---|---|",
    ]
    names = {"reference": "linear reference (log-mel statistics)"}
    for name in ("reference", "baseline"):
        lines.append(
            f"| {names.get(name, name)} | {percent(table['models'][name])} | |"
        )
    for spec in table["specialists"]:
        pairs = ", ".join(dict.fromkeys(spec["pairs"]))
        lines.append(
            f"| specialist {spec['rank']} ({pairs}) | "
            f"{percent(spec['accuracy'])} | {count(spec['pair_errors'])} "
            f"({count(spec['baseline_pair_errors'])}) |"
        )
    for name in ("ensemble", *STUDENT_ROWS):
        if name in table["models"]:
            row = ROW_NAMES.get(name, name)
            lines.append(f"| {row} | {percent(table['models'][name])} | |")
    return "\n".join(lines)


def print_table(summary):
    """Print the accuracies and the errors inside each target pair."""
    print(f"\n{'model':<40} {'test accuracy':>14} {'pair errors':>12}")
    print("-" * 68)
    reference = "linear reference (log-mel statistics)"
    print(f"{reference:<40} {100 * summary['reference']['accuracy']:>13.2f}%")
    print(f"{'baseline':<40} {100 * summary['baseline']['accuracy']:>13.2f}%")
    for spec in summary["specialists"]:
        name = "specialist " + "/".join(spec["pair"])
        errors = f"{spec['pair_errors']} (was {spec['baseline_pair_errors']})"
        print(f"{name:<40} {100 * spec['accuracy']:>13.2f}% {errors:>12}")
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
            if args.seeds:
                run_seeds(args, overrides, run_opts)
            else:
                Pipeline(args, overrides, run_opts).run()
    except PhaseFailed as failure:
        print(failure, file=sys.stderr)
        raise SystemExit(1) from None
    except (FolderInUse, FileExistsError) as error:  # in use; not a demo set
        raise SystemExit(str(error)) from None


def run_option(run_opts, name):
    """The value of ``--name=value`` among the run options, or None.

    Example
    -------
    >>> run_option(["--precision=fp16", "--device=cuda:1"], "device")
    'cuda:1'
    """
    values = [
        value
        for key, _, value in (item[2:].partition("=") for item in run_opts)
        if key == name
    ]
    return values[-1] if values else None


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


def seed_list(text):
    """Parse ``--seeds=1,2,3``.

    Example
    -------
    >>> seed_list("1, 2,3")
    [1, 2, 3]
    >>> seed_list("")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: give one seed or more, e.g. --seeds=1,2,3
    >>> seed_list("1,2,1")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: give distinct seeds: 1 is repeated in '1,2,1'
    """
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of integers: {text!r}"
        ) from None
    if not seeds:
        raise argparse.ArgumentTypeError(
            "give one seed or more, e.g. --seeds=1,2,3"
        )
    twice = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if twice:
        raise argparse.ArgumentTypeError(
            f"give distinct seeds: {', '.join(map(str, twice))} "
            f"{'is' if len(twice) == 1 else 'are'} repeated in {text!r}"
        )
    return seeds


def export_formats(text):
    """Parse ``--export_formats=onnx,int8`` (checked before any training).

    Example
    -------
    >>> export_formats("int8,onnx")
    ['onnx', 'int8']
    >>> export_formats("tflite")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: unknown export format(s) ['tflite']; ...
    """
    from speechbrain_kd.export_formats import parse_formats

    try:
        return parse_formats(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def yes_or_no(text):
    """Parse a command-line boolean (``True``/``False``, as YAML reads it).

    Example
    -------
    >>> yes_or_no("False"), yes_or_no("true")
    (False, True)
    >>> yes_or_no("maybe")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: give True or False, not 'maybe'
    """
    value = yaml.safe_load(text)
    if not isinstance(value, bool):
        raise argparse.ArgumentTypeError(f"give True or False, not {text!r}")
    return value


def yaml_mapping(text):
    """Parse a command-line YAML mapping (``"{n_mels: 40}"``)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise argparse.ArgumentTypeError(f"not YAML: {error}") from None
    if value is not None and not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"not a mapping: {text!r}")
    return value


if __name__ == "__main__":
    main()
