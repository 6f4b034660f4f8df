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

``phase`` in the YAML names the phase: ``baseline`` and ``specialist``
train with one-hot labels, ``distill`` with the soft labels of frozen
teachers, ``ensemble`` only evaluates the averaged posteriors of its
teachers. A specialist YAML without ``target_pair`` trains one specialist
per pair of ``confusing_pairs_file`` in one command.

The phase itself (data, soft labels, model spec, training, evaluation, the
refusal of a folder holding a phase of other settings unless
``--overwrite=True``) is the library's :mod:`speechbrain_kd.phase`; this
script holds what is particular to scenes.
"""

import sys
from pathlib import Path

import speechbrain as sb
import torch
from dcase2019_prepare import (
    prepare_from_settings,
    settings_scenes,
    training_scenes,
)

from speechbrain_kd.audio import load_audio
from speechbrain_kd.hparams_preview import SettingError, preview_hparams
from speechbrain_kd.pairs import read_confusing_pairs
from speechbrain_kd.phase import PhaseTask, phase_main
from speechbrain_kd.soft_labels import check_teacher_view


def check_target_pair(settings):
    """Refuse a specialist's ``target_pair`` naming a scene the data lacks."""
    pair = settings.get("target_pair")
    if not isinstance(pair, list | tuple):
        return
    scenes = training_scenes(settings["data_folder"])
    if scenes is None:  # no fold file: data preparation names it
        return
    absent = [scene for scene in pair if scene not in scenes]
    if absent:
        raise SettingError(
            f"--target_pair: {absent} not among the scenes of "
            f"{settings['data_folder']}/evaluation_setup/fold1_train.csv"
            f" ({sorted(scenes)})"
        )


def check_scene_settings(settings):
    """The recipe's own checks, before anything is trained."""
    check_target_pair(settings)
    check_teacher_view(settings)


def teacher_view_keys(hparams, train, dataset, split):
    """Add what the teachers see in the distillation phase.

    ``partner_id`` is another random clip of the same scene (the paper's
    multi-segment input); ``teacher_sig`` (online soft labels only) is the
    full clip, joined in time with the partner when ``multi_segment`` is on,
    or with ``teacher_view: student_input`` the student's own crop, so that
    teacher and student judge the same audio (the "consistent teaching" of
    Beyer et al., "Knowledge distillation: A good teacher is patient and
    consistent", CVPR 2022).
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
    if hparams["soft_label_mode"] != "online":
        return keys
    if hparams.get("teacher_view", "clip") == "student_input":

        @sb.utils.data_pipeline.takes("sig")
        @sb.utils.data_pipeline.provides("teacher_sig")
        def student_view_pipeline(sig):
            return sig

        sb.dataio.dataset.add_dynamic_item([dataset], student_view_pipeline)
    else:
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
        raise SettingError(
            f"--confusing_pairs_file: {hparams['confusing_pairs_file']} "
            "lists no confusing pair"
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


TASK = PhaseTask(
    label_column="scene",
    prepare=prepare_from_settings,
    training_labels=settings_scenes,
    check_settings=check_scene_settings,
    dataset_keys=teacher_view_keys,
    train_loader_kwargs=train_loader_kwargs,
    runs=specialist_overrides,
)

if __name__ == "__main__":
    phase_main(sys.argv[1:], TASK)
