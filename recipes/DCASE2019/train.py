#!/usr/bin/env python3
"""Train and evaluate one phase of the specialist-KD recipe on TAU scenes.

Jung, Heo, Shim, Yu, "Knowledge Distillation in Acoustic Scene
Classification", IEEE Access 8:166870-166879, 2020. Every phase is this
script with another YAML:

    python train.py hparams/baseline.yaml --data_folder=... --output_folder=...
    python train.py hparams/specialist.yaml --init_from=<baseline folder> \
        --confusing_pairs_file=<baseline folder>/confusing_pairs.json
    python train.py hparams/ensemble.yaml --teacher_folders=[...]
    python train.py hparams/distill.yaml --teacher_folders=[...]

``phase`` in the YAML picks the Brain and the extra data the phase needs:
``baseline`` and ``specialist`` train with one-hot labels, ``distill`` with
the soft labels of frozen teachers, ``ensemble`` only evaluates the averaged
posteriors of its teachers. A specialist YAML without ``target_pair`` trains
one specialist per pair of ``confusing_pairs_file`` in one command.

A folder that holds a phase's checkpoints or results made with other
settings is refused before anything is written (``phase_settings.json``
records them, :mod:`speechbrain_kd.stamps`); ``--overwrite=True`` deletes
what it holds and trains afresh.
"""

import csv
import logging
import re
import sys
from pathlib import Path

import ruamel.yaml
import speechbrain as sb
import torch
from dcase2019_prepare import prepare_dcase2019, training_scenes
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.distributed import run_on_main

from speechbrain_kd.audio import fitting_crop, load_audio
from speechbrain_kd.brain import DistillationBrain, SceneClassificationBrain
from speechbrain_kd.checkpoints import MODEL_SPEC_FILE, init_from_phase
from speechbrain_kd.complexity import (
    LIMIT_SETTINGS,
    check_model_limits,
    write_complexity,
)
from speechbrain_kd.dataio import ClipDraws, audio_pipeline
from speechbrain_kd.environment import check_device, one_line_faults
from speechbrain_kd.experiment import FolderInUse, sole_writer, start_env_log
from speechbrain_kd.hparams_preview import (
    SettingError,
    check_settings,
    preview_hparams,
    unknown_key_message,
    yaml_keys,
    yaml_value,
)
from speechbrain_kd.labels import (
    encoder_labels,
    load_or_create_label_encoder,
    n_classes_for,
)
from speechbrain_kd.manifests import manifest_at_rate
from speechbrain_kd.models import family_overrides
from speechbrain_kd.models.spec import write_model_spec
from speechbrain_kd.pairs import read_confusing_pairs
from speechbrain_kd.soft_labels import teacher_soft_labels
from speechbrain_kd.stamps import (
    check_phase_folder,
    claim_phase_folder,
    settings_record,
)
from speechbrain_kd.teacher_sources import TeacherError, teacher_kind

logger = logging.getLogger(__name__)


def dataio_prep(hparams):
    """Build the train, valid and test datasets of the phase."""
    rate, channels = hparams["sample_rate"], hparams["n_channels"]
    prepared = Path(hparams["prepare_folder"])
    manifests = {}
    for split in ("train", "valid", "test"):
        # Clips at another rate are resampled once here, not at every step.
        args = [prepared / f"{split}.csv", rate, prepared / f"at_{rate}Hz"]
        run_on_main(manifest_at_rate, args=args)
        manifests[split] = manifest_at_rate(*args)
    datasets = {
        split: sb.dataio.dataset.DynamicItemDataset.from_csv(csv_path=path)
        for split, path in manifests.items()
    }
    train = datasets["train"]
    scenes = [row["scene"] for row in train.data.values()]
    encoder = load_or_create_label_encoder(
        Path(hparams["save_folder"]) / "label_encoder.txt", scenes
    )
    hparams["label_encoder"] = encoder

    @sb.utils.data_pipeline.takes("scene")
    @sb.utils.data_pipeline.provides("label_encoded")
    def label_pipeline(scene):
        return encoder.encode_label_torch(scene)

    durations = [row["duration"] for row in train.data.values()]
    crop = fitting_crop(hparams.get("crop_seconds"), durations)
    keys = ["id", "sig", "label_encoded"]
    # Crops and partners are drawn per clip and epoch, the same in every
    # worker and process; the Brain sets the epoch (resumes stay exact).
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
        extra = teacher_view_keys(hparams, train, dataset, split)
        dataset.set_output_keys(keys + extra)
    return datasets, manifests


def teacher_view_keys(hparams, train, dataset, split):
    """Add what the teachers see in the distillation phase.

    ``partner_id`` is another random clip of the same scene (the paper's
    multi-segment input); ``teacher_sig`` is the full clip, joined in time
    with the partner when ``multi_segment`` is on (online soft labels only).
    """
    if hparams["phase"] != "distill" or split != "train":
        return []

    ids_by_scene = {}
    for clip_id, row in train.data.items():
        ids_by_scene.setdefault(row["scene"], []).append(clip_id)
    wav_of = {clip_id: row["wav"] for clip_id, row in train.data.items()}
    draws = hparams["clip_draws"]

    @sb.utils.data_pipeline.takes("id", "scene")
    @sb.utils.data_pipeline.provides("partner_id")
    def partner_pipeline(clip_id, scene):
        others = [i for i in ids_by_scene[scene] if i != clip_id] or [clip_id]
        generator = draws.generator(clip_id, "partner")
        return others[int(torch.randint(len(others), (), generator=generator))]

    sb.dataio.dataset.add_dynamic_item([dataset], partner_pipeline)
    keys = ["partner_id"]
    if hparams["soft_label_mode"] == "online":
        rate, channels = hparams["sample_rate"], hparams["n_channels"]

        @sb.utils.data_pipeline.takes("wav", "partner_id")
        @sb.utils.data_pipeline.provides("teacher_sig")
        def teacher_pipeline(wav, partner_id):
            clip = load_audio(wav, rate, channels)
            if not hparams["multi_segment"]:
                return clip
            partner = load_audio(wav_of[partner_id], rate, channels)
            return torch.cat([clip, partner], dim=0)

        sb.dataio.dataset.add_dynamic_item([dataset], teacher_pipeline)
        keys.append("teacher_sig")
    return keys


def soft_labels_for(hparams, run_opts, manifests):
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


def prepare_data(settings):
    """Write the manifests (once, on the main process); return the labels.

    ``settings`` are the phase's plain settings (:func:`preview_hparams`):
    the models are built only once the data says how many scenes it has.
    """
    try:
        run_on_main(
            prepare_dcase2019,
            kwargs={
                "data_folder": settings["data_folder"],
                "save_folder": settings["prepare_folder"],
                "valid_ratio": settings["valid_ratio"],
                "seed": settings["seed"],
                "skip_bad_files": settings["skip_bad_files"],
                "train_subset": settings["train_subset"],
                "split_setup_folder": settings["split_setup_folder"],
            },
        )
    except (ValueError, FileNotFoundError) as error:
        # Bad data, named by the preparation: its message, no traceback.
        raise SystemExit(f"data preparation: {error}") from None
    train_csv = Path(settings["prepare_folder"]) / "train.csv"
    with open(train_csv, newline="", encoding="utf-8") as f:
        return sorted({row["scene"] for row in csv.DictReader(f)})


def phase_settings(hparams_file, overrides):
    """The phase's plain settings, checked before anything is written."""
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
    pair = settings.get("target_pair")
    scenes = None
    if isinstance(pair, list | tuple):
        scenes = training_scenes(settings["data_folder"])
    if scenes is not None:
        absent = [scene for scene in pair if scene not in scenes]
        if absent:
            raise SettingError(
                f"--target_pair: {absent} not among the scenes of "
                f"{settings['data_folder']}/evaluation_setup/fold1_train.csv"
                f" ({sorted(scenes)})"
            )
    check_phase_limits(settings)  # a student too big: before its teachers
    folder = settings.get("init_from")
    if folder and not (Path(folder) / "save" / MODEL_SPEC_FILE).is_file():
        raise SettingError(
            f"--init_from: {folder} is not the output folder of a finished "
            f"training phase (no save/{MODEL_SPEC_FILE})"
        )
    for folder in settings.get("teacher_folders") or []:
        try:  # phase, inference folder, stored logits or hub id
            teacher_kind(folder, fetch=True)
        except FileNotFoundError as error:
            raise SettingError(f"--teacher_folders: {error}") from None
    return settings


def check_phase_limits(settings):
    """Refuse a model over ``max_params`` / ``max_macs`` before training.

    Also run by ``pipeline.py`` before the teachers. Returns the measured
    complexity, or None when no limit is set (or the fold file is missing:
    data preparation names that error).
    """
    if all(settings.get(name) is None for name in LIMIT_SETTINGS):
        return None
    n_classes = settings.get("n_classes")
    if n_classes is None:
        scenes = training_scenes(settings["data_folder"])
        if scenes is None:
            return None
        n_classes = len(scenes)
    what = "the student" if settings.get("phase") == "distill" else "the model"
    try:
        return check_model_limits(settings, n_classes, what=what)
    except ValueError as error:
        raise SettingError(f"--{error}") from None


def run_phase(hparams_file, run_opts, overrides):
    """Train (unless the phase only evaluates) and evaluate one model."""
    settings = phase_settings(hparams_file, overrides)
    if settings.get("model") is not None:  # fail before preparing data
        family_overrides(settings["model"], settings.get("model_options"))
    sb.create_experiment_directory(
        experiment_directory=settings["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
        save_env_desc=False,
    )
    start_env_log(settings["output_folder"])  # pip freeze, in parallel
    labels = prepare_data(settings)
    overrides = dict(
        overrides,
        n_classes=n_classes_for(
            labels,
            settings["n_classes"],
            source=f"{settings['prepare_folder']}/train.csv",
        ),
    )
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    datasets, manifests = dataio_prep(hparams)
    modules = hparams["modules"]
    phase = hparams["phase"]
    if phase == "ensemble":
        check_teacher_labels(hparams["teachers"], hparams)
    brain_class = SceneClassificationBrain
    if phase == "distill":
        brain_class = DistillationBrain
        hparams["soft_labels"] = soft_labels_for(hparams, run_opts, manifests)
    if phase != "ensemble":
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
    if phase != "ensemble":
        brain.fit(
            brain.hparams.epoch_counter,
            datasets["train"],
            datasets["valid"],
            train_loader_kwargs=train_loader_kwargs(hparams, datasets),
            valid_loader_kwargs=hparams["valid_dataloader_opts"],
        )
    for split in ("valid", "test"):
        brain.evaluate_split(
            datasets[split],
            split,
            test_loader_kwargs=hparams["valid_dataloader_opts"],
        )


def check_teacher_labels(ensemble, hparams):
    """Refuse teachers whose class order is not the phase's label encoder's.

    The posteriors are compared with the data's labels index by index: a
    teacher trained on another label set, or the same scenes in another
    order, would be scored against the wrong classes.
    """
    labels = encoder_labels(hparams["label_encoder"])
    if list(ensemble.labels) != labels:
        folders = ", ".join(map(str, ensemble.folders.values()))
        raise TeacherError(
            f"the teachers ({folders}) have the labels {list(ensemble.labels)}"
            f" but the data in {hparams['prepare_folder']} has {labels}: "
            "teachers must be trained on the same scenes"
        )


def train_loader_kwargs(hparams, datasets):
    """The training loader options; a specialist draws pair-focused batches."""
    kwargs = dict(hparams["train_dataloader_opts"])
    if hparams.get("target_pair"):
        sampler = hparams["pair_sampler"](
            datasets["train"], target_labels=list(hparams["target_pair"])
        )
        kwargs.pop("batch_size", None)
        kwargs.pop("shuffle", None)
        kwargs.pop("drop_last", None)
        kwargs["batch_sampler"] = sampler
    return kwargs


def specialist_overrides(hparams_file, overrides):
    """One set of overrides per pair when no ``target_pair`` is given."""
    hparams = preview_hparams(hparams_file, overrides)
    if hparams["phase"] != "specialist" or hparams.get("target_pair"):
        return [overrides]
    pairs = read_confusing_pairs(hparams["confusing_pairs_file"])
    pairs = pairs[: hparams["top_k_pairs"]]
    if not pairs:
        raise ValueError(
            f"{hparams['confusing_pairs_file']} lists no confusing pair"
        )
    runs = []
    for entry in pairs:
        pair = list(entry["pair"])
        run = dict(overrides)
        run["target_pair"] = pair
        run["output_folder"] = str(
            Path(hparams["output_folder"]) / "-".join(pair)
        )
        runs.append(run)
    return runs


def main(argv):
    """Parse the command line and run the phase (once per pair)."""
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    sb.utils.distributed.ddp_init_group(run_opts)
    try:
        overrides = yaml_value(overrides) if overrides else {}
    except ruamel.yaml.YAMLError as error:
        # One line, so that pipeline.py can show it as the phase's error.
        what = " ".join(
            part for part in (error.context, error.problem) if part
        ) or str(error)
        raise SystemExit(
            f"the command-line settings are not YAML ({what}): "
            + " ".join(argv[1:])
        ) from None
    overwrite = overrides.pop("overwrite", False)
    try:
        check_device(run_opts.get("device"))  # before anything is written
        phase_settings(hparams_file, overrides)
        runs = []
        for run in specialist_overrides(hparams_file, overrides):
            folder = phase_settings(hparams_file, run)["output_folder"]
            folder = Path(folder).resolve()
            record = settings_record(hparams_file, run)
            check_phase_folder(folder, record, overwrite)
            runs.append((run, folder, record))
        for run, folder, record in runs:
            with one_line_faults(folder), sole_writer(folder):
                run_on_main(
                    claim_phase_folder, args=[folder, record, overwrite]
                )
                run_phase(hparams_file, run_opts, run)
    except (FolderInUse, SettingError, TeacherError) as error:
        raise SystemExit(str(error)) from None
    if torch.distributed.is_initialized():
        # Every process waits for the others to finish, then leaves the
        # group: a process that exits with its gloo group alive can abort.
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
