"""One phase of a recipe: the body every recipe's ``train.py`` shares.

A phase prepares the data, builds the datasets (audio at the model's rate,
encoded labels, random crops), gets the teachers' soft labels when it has
teachers, writes the model's spec and complexity, starts from another
phase's model when asked, trains and evaluates on the valid and test
splits. A recipe describes only what is its own in a :class:`PhaseTask`
(how to prepare its data, the manifest column of the labels, extra checks,
dataset keys or runs) and calls :func:`phase_main`::

    TASK = PhaseTask(label_column="label", prepare=prepare_from_settings)
    if __name__ == "__main__":
        phase_main(sys.argv[1:], TASK)

Bad settings or data end the phase with one line and no traceback; with
the environment variable :data:`ERROR_FILE_ENV` set, every error that
ends it is also written there as JSON (:class:`ErrorReport`), for a
caller such as the scene recipe's pipeline.
"""

import contextlib
import csv
import dataclasses
import operator
import os
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import speechbrain as sb
import torch
import yaml
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.distributed import run_on_main

from speechbrain_kd.audio import fitting_crop
from speechbrain_kd.brain import DistillationBrain, SceneClassificationBrain
from speechbrain_kd.checkpoints import (
    MODEL_SPEC_FILE,
    find_best_checkpoint,
    init_from_phase,
)
from speechbrain_kd.complexity import (
    LIMIT_SETTINGS,
    check_model_limits,
    write_complexity,
)
from speechbrain_kd.dataio import ClipDraws, audio_pipeline
from speechbrain_kd.environment import check_device, one_line_faults
from speechbrain_kd.experiment import FolderInUse, sole_writer, start_env_log
from speechbrain_kd.files import write_json_atomic
from speechbrain_kd.hparams_preview import (
    SettingError,
    check_settings,
    preview_hparams,
    unknown_key_message,
    yaml_keys,
)
from speechbrain_kd.labels import (
    encoder_labels,
    load_or_create_label_encoder,
    n_classes_for,
)
from speechbrain_kd.manifests import manifest_at_rate
from speechbrain_kd.models import family_overrides
from speechbrain_kd.models.spec import write_model_spec
from speechbrain_kd.soft_labels import teacher_soft_labels
from speechbrain_kd.stamps import (
    check_phase_folder,
    claim_phase_folder,
    settings_record,
)
from speechbrain_kd.teacher_sources import TeacherError, teacher_kind

# Where a phase writes the error that ended it (JSON), when set.
ERROR_FILE_ENV = "SPEECHBRAIN_KD_ERROR_FILE"
SPLITS = ("train", "valid", "test")


class DataPreparationError(ValueError):
    """The recipe's data preparation refused the data (its message).

    Example
    -------
    >>> str(DataPreparationError("data preparation: meta.csv is missing"))
    'data preparation: meta.csv is missing'
    """


# Errors of the user's settings or data: one line, no traceback.
USER_ERRORS = (FolderInUse, SettingError, TeacherError, DataPreparationError)


@dataclasses.dataclass(frozen=True)
class PhaseTask:
    """What a recipe's phase has of its own; the rest is this module's.

    Arguments
    ---------
    label_column : str
        The manifests' column of the class names.
    prepare : callable
        ``prepare(settings)`` writes ``train.csv``, ``valid.csv`` and
        ``test.csv`` into ``settings["prepare_folder"]`` (run on the main
        process); it raises ``ValueError`` or ``FileNotFoundError`` with
        a message naming bad data.
    training_labels : callable, optional
        ``training_labels(settings)``: the training classes read before
        anything is written (None when the data cannot tell yet), so that
        a model over its limits is refused first; without it, the limits
        are checked once the data is prepared.
    phase_name : callable
        ``phase_name(settings)``: the phase's name (``model_spec.json``);
        by default the ``phase`` setting. The ``ensemble`` phase only
        evaluates its teachers; another phase with ``teacher_folders``
        learns their soft labels.
    check_settings : callable, optional
        ``check_settings(settings)`` raises :class:`SettingError` for a
        setting the task refuses, before anything is written.
    dataset_keys : callable, optional
        ``dataset_keys(hparams, train, dataset, split)`` adds dynamic
        items to ``dataset`` and returns their output keys.
    train_loader_kwargs : callable, optional
        ``train_loader_kwargs(hparams, datasets)``: the training loader's
        options; by default ``train_dataloader_opts``.
    runs : callable, optional
        ``runs(hparams_file, overrides)``: the overrides of each run one
        command makes (one per pair, say); by default ``[overrides]``.

    Example
    -------
    >>> task = PhaseTask("label", prepare=print)
    >>> task.phase_name({"phase": "baseline"})
    'baseline'
    """

    label_column: str
    prepare: Callable
    training_labels: Callable | None = None
    phase_name: Callable = operator.itemgetter("phase")
    check_settings: Callable | None = None
    dataset_keys: Callable | None = None
    train_loader_kwargs: Callable | None = None
    runs: Callable | None = None


class ErrorReport(contextlib.AbstractContextManager):
    """Write the error that ends the block to ``path`` as JSON, then re-raise.

    ``{"error": <one line>, "log": <the phase's log.txt, or null>}``: the
    message of a ``SystemExit`` (the one-line user errors), or the type and
    message of an unexpected exception. The caller that set ``path`` reads
    it instead of the phase's output. Nothing is written without ``path``
    or when the block ends well.

    Arguments
    ---------
    path : str or pathlib.Path, optional
        Where to write; by default the variable :data:`ERROR_FILE_ENV`.

    Attributes
    ----------
    log : pathlib.Path or None
        The log the failed phase wrote (named when it exists).

    Example
    -------
    >>> import json
    >>> path = getfixture("tmpdir") + "/error.json"
    >>> with ErrorReport(path) as report:
    ...     report.log = Path(getfixture("tmpdir")) / "no_log.txt"
    ...     raise KeyError("scene")
    Traceback (most recent call last):
    ...
    KeyError: 'scene'
    >>> json.load(open(path))
    {'error': "KeyError: 'scene'", 'log': None}
    """

    def __init__(self, path=None):
        self.path = path or os.environ.get(ERROR_FILE_ENV) or None
        self.log = None

    def __exit__(self, kind, error, traceback):
        if self.path is None or error is None:
            return False
        if isinstance(error, SystemExit):
            if error.code in (None, 0):
                return False
            message = error.code
            if not isinstance(message, str):
                message = f"exit status {message}"
        else:
            message = f"{type(error).__name__}: {error}"
        log = self.log if self.log and Path(self.log).is_file() else None
        write_json_atomic(
            self.path,
            {
                "error": " ".join(str(message).split("\n")),
                "log": None if log is None else str(log),
            },
        )
        return False


def prepare_data(settings, prepare, label_column):
    """Write the manifests (once, on the main process); return the labels.

    Arguments
    ---------
    settings : dict
        The phase's plain settings (:func:`preview_hparams`); the models
        are built only once the data says how many classes it has.
    prepare : callable
        The recipe's ``prepare(settings)`` (:class:`PhaseTask`).
    label_column : str
        The column of the class names in ``train.csv``.

    Returns
    -------
    list of str
        The sorted classes of the training split.

    Raises
    ------
    DataPreparationError
        ``data preparation: <its message>`` for bad data.

    Example
    -------
    >>> folder = Path(getfixture("tmpdir"))
    >>> def prepare(settings):
    ...     (folder / "train.csv").write_text("ID,scene\\na,park\\nb,bus\\n")
    >>> prepare_data({"prepare_folder": folder}, prepare, "scene")
    ['bus', 'park']
    >>> def refuse(settings):
    ...     raise FileNotFoundError("meta.csv is missing")
    >>> prepare_data({"prepare_folder": folder}, refuse, "scene")
    Traceback (most recent call last):
    ...
    speechbrain_kd.phase.DataPreparationError: data preparation: meta.csv ...
    """
    try:
        run_on_main(prepare, args=[settings])
    except (ValueError, FileNotFoundError) as error:
        raise DataPreparationError(f"data preparation: {error}") from None
    train_csv = Path(settings["prepare_folder"]) / "train.csv"
    with open(train_csv, newline="", encoding="utf-8") as f:
        return sorted({row[label_column] for row in csv.DictReader(f)})


def check_phase_limits(settings, training_labels=None):
    """Refuse a model over ``max_params`` / ``max_macs`` before training.

    Arguments
    ---------
    settings : dict
        The phase's plain settings.
    training_labels : callable, optional
        ``training_labels(settings)``: the classes, read without writing
        anything, when ``settings`` has no ``n_classes``; may return None.

    Returns
    -------
    dict or None
        The measured complexity; None when no limit is set or the number
        of classes is not known yet (data preparation names that error).

    Raises
    ------
    SettingError
        Naming the limit and by how much the model is over it.

    Example
    -------
    >>> settings = {"model": "logmel_cnn", "n_channels": 1,
    ...     "sample_rate": 8000, "embedding_dim": 8, "pooling": "avgmax",
    ...     "attention_heads": 1, "max_params": 100, "teacher_folders": [],
    ...     "model_options": {"n_mels": 16, "conv_channels": [4]}}
    >>> check_phase_limits(settings, lambda s: {"bus", "park", "tram"})
    Traceback (most recent call last):
    ...
    speechbrain_kd.hparams_preview.SettingError: --max_params=100: the \
student has 146 parameters, 46 over ...
    >>> check_phase_limits(settings, lambda s: None) is None
    True
    """
    if all(settings.get(name) is None for name in LIMIT_SETTINGS):
        return None
    n_classes = settings.get("n_classes")
    if n_classes is None:
        labels = training_labels(settings) if training_labels else None
        if labels is None:
            return None
        n_classes = len(labels)
    what = "the student" if "teacher_folders" in settings else "the model"
    try:
        return check_model_limits(settings, n_classes, what=what)
    except ValueError as error:
        raise SettingError(f"--{error}") from None


def phase_settings(hparams_file, overrides, task):
    """The phase's plain settings, checked before anything is written.

    A missing or unknown setting, a value no phase can use, a model over
    its limits, an ``init_from`` or teacher that is not there (or holds no
    checkpoint) are refused with a :class:`SettingError` naming it.

    Arguments
    ---------
    hparams_file : str or pathlib.Path
    overrides : dict
    task : PhaseTask

    Returns
    -------
    dict

    Example
    -------
    >>> path = getfixture("tmpdir") + "/phase.yaml"
    >>> _ = open(path, "w").write("lr: 0.1\\ndata_folder: !PLACEHOLDER\\n")
    >>> task = PhaseTask("label", prepare=print)
    >>> phase_settings(path, {"data_folder": "d"}, task)["lr"]
    0.1
    >>> phase_settings(path, {}, task)
    Traceback (most recent call last):
    ...
    speechbrain_kd.hparams_preview.SettingError: --data_folder is required...
    >>> phase_settings(path, {"data_folder": "d", "lt": 1}, task)
    Traceback (most recent call last):
    ...
    speechbrain_kd.hparams_preview.SettingError: --lt: 'lt' is not a ...
    """
    try:
        settings = preview_hparams(hparams_file, overrides)
    except ValueError as error:
        missing = re.match(r"'(\w+)' is a !PLACEHOLDER", str(error))
        if missing is None:
            raise
        raise SettingError(
            f"--{missing.group(1)} is required by {hparams_file}: give it "
            "on the command line (see the comment above it in the file)"
        ) from None
    except KeyError as error:
        known = yaml_keys(hparams_file)
        key = next((k for k in overrides if k not in known), None)
        if key is None:
            raise
        raise SettingError(
            f"--{key}: " + unknown_key_message(key, known, hparams_file)
        ) from error
    check_settings(settings, hparams_file)
    if task.check_settings is not None:
        task.check_settings(settings)
    # A student too big: refused before its teachers are looked at.
    check_phase_limits(settings, task.training_labels)
    folder = settings.get("init_from")
    if folder:
        if not (Path(folder) / "save" / MODEL_SPEC_FILE).is_file():
            raise SettingError(
                f"--init_from: {folder} is not the output folder of a "
                f"finished training phase (no save/{MODEL_SPEC_FILE})"
            )
        _check_checkpoint("--init_from", folder)
    for folder in settings.get("teacher_folders") or []:
        try:  # phase, inference folder, stored logits or hub id
            kind = teacher_kind(folder, fetch=True)
        except FileNotFoundError as error:
            raise SettingError(f"--teacher_folders: {error}") from None
        if kind == "phase":
            _check_checkpoint("--teacher_folders", folder)
    return settings


def _check_checkpoint(setting, folder):
    """A phase folder without a checkpoint to load: one line naming it."""
    try:
        find_best_checkpoint(folder)
    except FileNotFoundError as error:
        raise SettingError(
            f"{setting}: {folder} holds no trained model ({error})"
        ) from None


def dataio_prep(hparams, task):
    """Build the train, valid and test datasets of the phase.

    Clips at another rate than the model's are resampled once, here; the
    training clips are cropped at random (:class:`ClipDraws`, per clip and
    epoch), the others read whole. Sets ``hparams["label_encoder"]`` and
    ``hparams["clip_draws"]``.

    Arguments
    ---------
    hparams : dict
        The loaded phase (``prepare_folder``, ``save_folder``,
        ``sample_rate``, ``n_channels``, ``seed``, ``crop_seconds``).
    task : PhaseTask

    Returns
    -------
    datasets : dict of str -> DynamicItemDataset
    manifests : dict of str -> pathlib.Path
        The manifests at the model's rate.

    Example
    -------
    >>> import numpy as np, soundfile
    >>> folder = Path(getfixture("tmpdir"))
    >>> for split in SPLITS:
    ...     path = folder / f"{split}.wav"
    ...     soundfile.write(path, np.zeros(800), 8000)
    ...     _ = (folder / f"{split}.csv").write_text(
    ...         "ID,duration,wav,sample_rate,label\\n"
    ...         f"{split},0.1,{path},8000,dog\\n")
    >>> hparams = {"prepare_folder": folder, "save_folder": folder,
    ...     "sample_rate": 8000, "n_channels": 1, "seed": 1,
    ...     "crop_seconds": None}
    >>> datasets, _ = dataio_prep(hparams, PhaseTask("label", print))
    >>> item = datasets["test"][0]
    >>> item["id"], tuple(item["sig"].shape), int(item["label_encoded"])
    ('test', (800, 1), 0)
    """
    rate, channels = hparams["sample_rate"], hparams["n_channels"]
    prepared = Path(hparams["prepare_folder"])
    manifests = {}
    for split in SPLITS:
        args = [prepared / f"{split}.csv", rate, prepared / f"at_{rate}Hz"]
        run_on_main(manifest_at_rate, args=args)
        manifests[split] = manifest_at_rate(*args)
    datasets = {
        split: sb.dataio.dataset.DynamicItemDataset.from_csv(csv_path=path)
        for split, path in manifests.items()
    }
    train = datasets["train"]
    column = task.label_column
    encoder = load_or_create_label_encoder(
        Path(hparams["save_folder"]) / "label_encoder.txt",
        [row[column] for row in train.data.values()],
    )
    hparams["label_encoder"] = encoder

    @sb.utils.data_pipeline.takes(column)
    @sb.utils.data_pipeline.provides("label_encoded")
    def label_pipeline(label):
        return encoder.encode_label_torch(label)

    durations = [row["duration"] for row in train.data.values()]
    crop = fitting_crop(hparams.get("crop_seconds"), durations)
    # Crops (and a recipe's other draws) are per clip and epoch, the same
    # in every worker and process; the Brain sets the epoch.
    hparams["clip_draws"] = ClipDraws(hparams["seed"])
    sb.dataio.dataset.add_dynamic_item(
        [train],
        audio_pipeline(
            rate, channels, crop_seconds=crop, draws=hparams["clip_draws"]
        ),
    )
    sb.dataio.dataset.add_dynamic_item(
        [datasets["valid"], datasets["test"]],
        audio_pipeline(rate, channels, crop_seconds=None),
    )
    sb.dataio.dataset.add_dynamic_item(datasets.values(), label_pipeline)
    for split, dataset in datasets.items():
        extra = []
        if task.dataset_keys is not None:
            extra = task.dataset_keys(hparams, train, dataset, split)
        dataset.set_output_keys(["id", "sig", "label_encoded", *extra])
    return datasets, manifests


def check_teacher_labels(ensemble, hparams):
    """Refuse teachers whose class order is not the phase's label encoder's.

    The posteriors are compared with the data's labels index by index: a
    teacher trained on another label set, or the same classes in another
    order, would be scored against the wrong classes.

    Arguments
    ---------
    ensemble : speechbrain_kd.teachers.TeacherEnsemble
        With ``labels`` and ``folders``.
    hparams : dict
        ``label_encoder`` and ``prepare_folder``.

    Example
    -------
    >>> from types import SimpleNamespace
    >>> from speechbrain.dataio.encoder import CategoricalEncoder
    >>> encoder = CategoricalEncoder()
    >>> encoder.update_from_iterable(["bus", "park"])
    >>> ensemble = SimpleNamespace(labels=["park", "bus"], folders={0: "t"})
    >>> check_teacher_labels(ensemble, {"label_encoder": encoder,
    ...     "prepare_folder": "m"})
    Traceback (most recent call last):
    ...
    speechbrain_kd.teacher_sources.TeacherError: the teachers (t) have ...
    """
    labels = encoder_labels(hparams["label_encoder"])
    if list(ensemble.labels) != labels:
        folders = ", ".join(map(str, ensemble.folders.values()))
        raise TeacherError(
            f"the teachers ({folders}) have the labels {list(ensemble.labels)}"
            f" but the data in {hparams['prepare_folder']} has {labels}: "
            "teachers must be trained on the same classes"
        )


def _soft_labels(hparams, run_opts, manifests):
    """The online teachers or the soft-label cache of the student."""
    # Where the Brain runs: SpeechBrain's own guess when --device is not set.
    device = run_opts.get("device") or sb.utils.distributed.infer_device()
    return teacher_soft_labels(
        hparams["soft_label_mode"],
        hparams["teacher_folders"],
        labels=encoder_labels(hparams["label_encoder"]),
        device=device,
        label_map=hparams["teacher_label_map"],
        path=hparams["soft_label_cache"],
        manifest_csv=manifests["train"],
        sample_rate=hparams["sample_rate"],
        channels=hparams["n_channels"],
        multi_segment=hparams["multi_segment"],
    )


def run_phase(hparams_file, run_opts, overrides, task, settings=None):
    """Train (unless the phase only evaluates) and evaluate one model.

    Arguments
    ---------
    hparams_file : str or pathlib.Path
    run_opts : dict
        SpeechBrain's run options.
    overrides : dict
        The command line's settings.
    task : PhaseTask
    settings : dict, optional
        Those of :func:`phase_settings`, when already checked.
    """
    if settings is None:
        settings = phase_settings(hparams_file, overrides, task)
    if settings.get("model") is not None:  # fail before preparing data
        family_overrides(settings["model"], settings.get("model_options"))
    sb.create_experiment_directory(
        experiment_directory=settings["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
        save_env_desc=False,
    )
    run_on_main(_keep_script, args=[settings["output_folder"]])
    start_env_log(settings["output_folder"])  # pip freeze, in parallel
    labels = prepare_data(settings, task.prepare, task.label_column)
    n_classes = n_classes_for(
        labels,
        settings["n_classes"],
        source=f"{settings['prepare_folder']}/train.csv",
    )
    if task.training_labels is None:  # not checked before writing
        check_phase_limits(dict(settings, n_classes=n_classes))
    overrides = dict(overrides, n_classes=n_classes)
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    datasets, manifests = dataio_prep(hparams, task)
    modules = hparams["modules"]
    phase = task.phase_name(settings)
    evaluates_only = phase == "ensemble"
    if evaluates_only:
        check_teacher_labels(modules["embedding_model"], hparams)
    brain_class = SceneClassificationBrain
    if "teacher_folders" in hparams and not evaluates_only:
        brain_class = DistillationBrain
        hparams["soft_labels"] = _soft_labels(hparams, run_opts, manifests)
    if not evaluates_only:
        run_on_main(
            write_model_spec,
            args=[
                Path(hparams["save_folder"]) / MODEL_SPEC_FILE,
                modules["embedding_model"],
                modules["classifier"],
                hparams["sample_rate"],
                labels,
            ],
            kwargs={"phase": phase, "best_key": hparams["best_key"]},
        )
    run_on_main(
        write_complexity,
        args=[modules, hparams["sample_rate"], hparams["n_channels"]],
        kwargs={"output_folder": hparams["output_folder"]},
    )
    if hparams.get("init_from"):
        init_from_phase(
            hparams["init_from"],
            {k: modules[k] for k in ("embedding_model", "classifier")},
        )
    brain = brain_class(
        modules=modules,
        opt_class=hparams.get("opt_class"),
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams.get("checkpointer"),
    )
    if not evaluates_only:
        loader_kwargs = hparams["train_dataloader_opts"]
        if task.train_loader_kwargs is not None:
            loader_kwargs = task.train_loader_kwargs(hparams, datasets)
        brain.fit(
            brain.hparams.epoch_counter,
            datasets["train"],
            datasets["valid"],
            train_loader_kwargs=loader_kwargs,
            valid_loader_kwargs=hparams["valid_dataloader_opts"],
        )
    for split in ("valid", "test"):
        brain.evaluate_split(
            datasets[split],
            split,
            test_loader_kwargs=hparams["valid_dataloader_opts"],
        )


def _keep_script(output_folder):
    """Keep the recipe's script beside its results, as SpeechBrain's own.

    ``create_experiment_directory`` copies the file that called it: this
    module, not the script the user ran.
    """
    copied = Path(output_folder) / Path(__file__).name
    script = getattr(sys.modules["__main__"], "__file__", None)
    if script is None or Path(script).resolve() == copied.resolve():
        return
    copied.unlink(missing_ok=True)
    shutil.copy(os.path.realpath(script), output_folder)


def command_line_overrides(overrides, argv):
    """The command line's settings (YAML text) as a dict, or one line.

    Example
    -------
    >>> command_line_overrides("lr: 0.1", ["phase.yaml", "--lr=0.1"])
    {'lr': 0.1}
    >>> command_line_overrides("pair: [a, b", ["p.yaml", "--pair=[a, b"])
    Traceback (most recent call last):
    ...
    SystemExit: the command-line settings are not YAML (while parsing ...
    """
    try:
        return yaml.safe_load(overrides) if overrides else {}
    except yaml.YAMLError as error:
        what = " ".join(
            part for part in (error.context, error.problem) if part
        ) or str(error)
        raise SystemExit(
            f"the command-line settings are not YAML ({what}): "
            + " ".join(argv[1:])
        ) from None


def phase_main(argv, task):
    """Parse a recipe's command line and run its phase (once per run).

    ``train.py <hparams.yaml> [--setting=value ...] [--overwrite=True]``
    with SpeechBrain's run options. Every run's settings and folder are
    checked before any is written; a user error (:data:`USER_ERRORS`)
    ends it with one line, and any error that ends it is written to the
    file :data:`ERROR_FILE_ENV` names (:class:`ErrorReport`).

    Arguments
    ---------
    argv : list of str
        The command line, without the script.
    task : PhaseTask
    """
    with ErrorReport() as report:
        hparams_file, run_opts, overrides = sb.parse_arguments(argv)
        sb.utils.distributed.ddp_init_group(run_opts)
        overrides = command_line_overrides(overrides, argv)
        overwrite = overrides.pop("overwrite", False)
        try:
            check_device(run_opts.get("device"))  # before anything is written
            first = phase_settings(hparams_file, overrides, task)
            runs = []
            for run in (
                task.runs(hparams_file, overrides) if task.runs else [overrides]
            ):
                settings = first
                if run != overrides:
                    settings = phase_settings(hparams_file, run, task)
                folder = Path(settings["output_folder"]).resolve()
                record = settings_record(hparams_file, run)
                check_phase_folder(folder, record, overwrite)
                runs.append((run, settings, folder, record))
            for run, settings, folder, record in runs:
                report.log = folder / "log.txt"
                with one_line_faults(folder), sole_writer(folder):
                    run_on_main(
                        claim_phase_folder, args=[folder, record, overwrite]
                    )
                    run_phase(hparams_file, run_opts, run, task, settings)
        except USER_ERRORS as error:
            raise SystemExit(str(error)) from None
        if torch.distributed.is_initialized():
            # Every process waits for the others to finish, then leaves the
            # group: a process that exits with its gloo group alive can
            # abort.
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()
