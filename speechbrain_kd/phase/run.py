"""One run of a phase: data, soft labels, model spec, fit, evaluate."""

import os
import shutil
import sys
from pathlib import Path

import speechbrain as sb
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.distributed import run_on_main

from speechbrain_kd.brain import DistillationBrain, SceneClassificationBrain
from speechbrain_kd.checkpoints import MODEL_SPEC_FILE, init_from_phase
from speechbrain_kd.complexity import write_complexity
from speechbrain_kd.experiment import start_env_log
from speechbrain_kd.hparams_preview import SettingError
from speechbrain_kd.labels import encoder_labels, n_classes_for
from speechbrain_kd.models import family_overrides
from speechbrain_kd.models.spec import write_model_spec
from speechbrain_kd.phase.data import dataio_prep, prepare_data
from speechbrain_kd.phase.settings import check_phase_limits, phase_settings
from speechbrain_kd.soft_labels import teacher_soft_labels
from speechbrain_kd.teacher_sources import TeacherError


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

    Example
    -------
    >>> from speechbrain_kd.phase.task import PhaseTask
    >>> path = getfixture("tmpdir") + "/phase.yaml"
    >>> _ = open(path, "w").write("output_folder: !PLACEHOLDER\\n")
    >>> run_phase(path, {}, {}, PhaseTask("label", print))
    Traceback (most recent call last):
    ...
    speechbrain_kd.hparams_preview.SettingError: --output_folder is ...
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
    try:
        n_classes = n_classes_for(
            labels,
            settings["n_classes"],
            source=f"{settings['prepare_folder']}/train.csv",
        )
    except ValueError as error:
        raise SettingError(f"--{error}") from None
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
        check_teacher_labels(hparams["teachers"], hparams)
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
