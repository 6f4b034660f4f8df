#!/usr/bin/env python3
"""Train an ESC-50 teacher, or distil a student from teachers.

    python train.py hparams/teacher.yaml --data_folder=ESC-50-master --seed=1
    python train.py hparams/student.yaml --data_folder=ESC-50-master \
        --teacher_folders=[results/ESC50/teacher/fold1/1,...]

The second task of speechbrain-kd: environmental sound classification on
ESC-50 (Piczak, ACM Multimedia 2015), 5 folds. The nouns all come from the
library (model families, the Brain, the KD loss, the teacher ensemble and
its soft-label cache, complexity limits); this script only orders them:
prepare the split, build the data pipeline, train, evaluate on the test
fold. A YAML with ``teacher_folders`` is a student. A folder holding a
run of other settings is refused unless ``--overwrite=True``.
"""

import logging
import sys
from pathlib import Path

import speechbrain as sb
from esc50_prepare import prepare_esc50
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.distributed import run_on_main

from speechbrain_kd.audio import fitting_crop
from speechbrain_kd.brain import DistillationBrain, SceneClassificationBrain
from speechbrain_kd.checkpoints import MODEL_SPEC_FILE
from speechbrain_kd.complexity import check_model_limits, write_complexity
from speechbrain_kd.dataio import ClipDraws, audio_pipeline
from speechbrain_kd.environment import check_device, one_line_faults
from speechbrain_kd.hparams_preview import preview_hparams, yaml_value
from speechbrain_kd.labels import (
    encoder_labels,
    load_or_create_label_encoder,
    n_classes_for,
)
from speechbrain_kd.manifests import manifest_at_rate
from speechbrain_kd.models.spec import write_model_spec
from speechbrain_kd.soft_labels import teacher_soft_labels
from speechbrain_kd.stamps import (
    check_phase_folder,
    claim_phase_folder,
    settings_record,
)

logger = logging.getLogger(__name__)


def prepare(settings):
    """Write the split's manifests (main process); return the labels."""
    kwargs = {
        key: settings[key]
        for key in ("data_folder", "test_fold", "valid_fold", "esc10")
    }
    run_on_main(
        prepare_esc50,
        kwargs=dict(kwargs, save_folder=settings["prepare_folder"]),
    )
    train = Path(settings["prepare_folder"]) / "train.csv"
    dataset = sb.dataio.dataset.DynamicItemDataset.from_csv(train)
    return sorted({row["label"] for row in dataset.data.values()})


def dataio_prep(hparams):
    """Train, valid and test datasets: audio at the model's rate, labels."""
    rate, channels = hparams["sample_rate"], hparams["n_channels"]
    prepared = Path(hparams["prepare_folder"])
    manifests, datasets = {}, {}
    for split in ("train", "valid", "test"):
        args = [prepared / f"{split}.csv", rate, prepared / f"at_{rate}Hz"]
        run_on_main(manifest_at_rate, args=args)
        manifests[split] = manifest_at_rate(*args)
        datasets[split] = sb.dataio.dataset.DynamicItemDataset.from_csv(
            manifests[split]
        )
    train = datasets["train"]
    encoder = load_or_create_label_encoder(
        Path(hparams["save_folder"]) / "label_encoder.txt",
        [row["label"] for row in train.data.values()],
    )
    hparams["label_encoder"] = encoder

    @sb.utils.data_pipeline.takes("label")
    @sb.utils.data_pipeline.provides("label_encoded")
    def label_pipeline(label):
        return encoder.encode_label_torch(label)

    crop = fitting_crop(
        hparams["crop_seconds"], [r["duration"] for r in train.data.values()]
    )
    hparams["clip_draws"] = ClipDraws(hparams["seed"])
    sb.dataio.dataset.add_dynamic_item(
        [train], audio_pipeline(rate, channels, crop, hparams["clip_draws"])
    )
    sb.dataio.dataset.add_dynamic_item(
        [datasets["valid"], datasets["test"]], audio_pipeline(rate, channels)
    )
    sb.dataio.dataset.add_dynamic_item(datasets.values(), label_pipeline)
    sb.dataio.dataset.set_output_keys(
        datasets.values(), ["id", "sig", "label_encoded"]
    )
    return datasets, manifests


def run(hparams_file, run_opts, overrides):
    """Prepare, build, train and evaluate one model."""
    settings = preview_hparams(hparams_file, overrides)
    labels = prepare(settings)
    n_classes = n_classes_for(labels, settings["n_classes"], "train.csv")
    student = "teacher_folders" in settings
    if student:  # too big a student: refused before anything trains
        try:
            check_model_limits(settings, n_classes, what="the student")
        except ValueError as error:
            raise ValueError(f"--{error}") from None
    overrides = dict(overrides, n_classes=n_classes)
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )
    datasets, manifests = dataio_prep(hparams)
    modules = hparams["modules"]
    if student:
        hparams["soft_labels"] = teacher_soft_labels(
            hparams["soft_label_mode"],
            hparams["teacher_folders"],
            labels=encoder_labels(hparams["label_encoder"]),
            device=run_opts.get("device")
            or sb.utils.distributed.infer_device(),
            label_map=hparams["teacher_label_map"],
            path=hparams["soft_label_cache"],
            manifest_csv=manifests["train"],
            sample_rate=hparams["sample_rate"],
            channels=hparams["n_channels"],
            multi_segment=hparams["multi_segment"],
        )
    run_on_main(
        write_model_spec,
        args=[
            Path(hparams["save_folder"]) / MODEL_SPEC_FILE,
            modules["embedding_model"],
            modules["classifier"],
            hparams["sample_rate"],
            encoder_labels(hparams["label_encoder"]),
        ],
        kwargs={"phase": "student" if student else "teacher"},
    )
    run_on_main(
        write_complexity,
        args=[modules, hparams["sample_rate"], hparams["n_channels"]],
        kwargs={"output_folder": hparams["output_folder"]},
    )
    brain_class = DistillationBrain if student else SceneClassificationBrain
    brain = brain_class(
        modules=modules,
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    brain.fit(
        hparams["epoch_counter"],
        datasets["train"],
        datasets["valid"],
        train_loader_kwargs=hparams["train_dataloader_opts"],
        valid_loader_kwargs=hparams["valid_dataloader_opts"],
    )
    for split in ("valid", "test"):
        brain.evaluate_split(
            datasets[split],
            split,
            test_loader_kwargs=hparams["valid_dataloader_opts"],
        )


def main(argv):
    """Parse the command line; bad data or settings end in one line."""
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    overrides = yaml_value(overrides) if overrides else {}
    overwrite = overrides.pop("overwrite", False)
    try:
        check_device(run_opts.get("device"))  # before anything is written
        # A folder holding a run of other settings: refused, unwritten.
        folder = preview_hparams(hparams_file, overrides)["output_folder"]
        folder = Path(folder).resolve()
        record = settings_record(hparams_file, overrides)
        check_phase_folder(folder, record, overwrite)
        with one_line_faults(folder):
            run_on_main(claim_phase_folder, args=[folder, record, overwrite])
            run(hparams_file, run_opts, overrides)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    main(sys.argv[1:])
