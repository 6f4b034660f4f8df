"""A phase's settings, checked before anything is written."""

import re
from pathlib import Path

import ruamel.yaml

from speechbrain_kd.checkpoints import MODEL_SPEC_FILE, find_best_checkpoint
from speechbrain_kd.complexity import LIMIT_SETTINGS, check_model_limits
from speechbrain_kd.hparams_preview import (
    SettingError,
    check_settings,
    preview_hparams,
    unknown_key_message,
    yaml_keys,
    yaml_value,
)
from speechbrain_kd.teacher_sources import teacher_kind


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
    >>> from speechbrain_kd.phase.task import PhaseTask
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
        return yaml_value(overrides) if overrides else {}
    except ruamel.yaml.YAMLError as error:
        what = " ".join(
            part for part in (error.context, error.problem) if part
        ) or str(error)
        raise SystemExit(
            f"the command-line settings are not YAML ({what}): "
            + " ".join(argv[1:])
        ) from None
