"""What the teachers see in the distillation phase of the scene recipe: the
multi-segment partner (another clip of the same scene, online and cached)
and the online teacher input (the clip joined in time with its partner)."""

import importlib.util
from collections import Counter

import numpy as np
import pytest
import soundfile
import speechbrain as sb
import torch

from speechbrain_kd.audio import load_audio
from speechbrain_kd.dataio import ClipDraws, audio_pipeline
from speechbrain_kd.hparams_preview import SettingError
from speechbrain_kd.soft_labels import check_teacher_view
from tests.conftest import RECIPE

RATE = 8000
SCENES = {"bus": 4, "park": 3, "metro": 1}  # metro: a clip without partner


def recipe_train():
    """The scene recipe's train.py as a module (ESC-50 has a train.py too)."""
    spec = importlib.util.spec_from_file_location(
        "dcase2019_train", RECIPE / "train.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def train_script():
    return recipe_train()


@pytest.fixture
def train_set(tmp_path):
    """A train split whose clips are told apart by their first sample
    and whose crops by where they start."""
    data = {}
    for scene, n in SCENES.items():
        for k in range(n):
            clip_id = f"{scene}-{k}"
            path = tmp_path / f"{clip_id}.wav"
            value = (len(data) + 1) / 100
            ramp = np.arange(RATE // 10)[:, None] / RATE  # crops differ
            soundfile.write(path, value + ramp * [1, 1], RATE)
            data[clip_id] = {"wav": str(path), "scene": scene}
    return sb.dataio.dataset.DynamicItemDataset(data)


def views(
    train_script,
    train_set,
    mode,
    multi_segment,
    seed=1,
    epochs=8,
    teacher_view="clip",
):
    """The (clip, its crop, partner, teacher input) of every clip over some
    epochs; the student's crops are 0.05 s, as the phase's data draws them."""
    draws = ClipDraws(seed)
    hparams = {
        "phase": "distill",
        "soft_label_mode": mode,
        "multi_segment": multi_segment,
        "teacher_view": teacher_view,
        "sample_rate": RATE,
        "n_channels": 2,
        "clip_draws": draws,
    }
    sb.dataio.dataset.add_dynamic_item(
        [train_set], audio_pipeline(RATE, 2, crop_seconds=0.05, draws=draws)
    )
    keys = train_script.teacher_view_keys(
        hparams, train_set, train_set, "train"
    )
    train_set.set_output_keys(["id", "scene", "sig", *keys])
    seen = []
    for epoch in range(epochs):
        hparams["clip_draws"].set_epoch(epoch)
        seen.extend(train_set[i] for i in range(len(train_set)))
    return keys, seen


@pytest.mark.parametrize("mode", ["online", "cached"])
def test_partner_is_another_clip_of_the_same_scene(
    train_script, train_set, mode
):
    keys, seen = views(train_script, train_set, mode, multi_segment=True)
    assert "partner_id" in keys
    scene_of = {i: row["scene"] for i, row in train_set.data.items()}
    partners = {}
    for item in seen:
        clip, partner = item["id"], item["partner_id"]
        assert scene_of[partner] == item["scene"], (clip, partner)
        if SCENES[item["scene"]] > 1:
            assert partner != clip
        else:
            assert partner == clip  # the only clip of its scene
        partners.setdefault(clip, Counter())[partner] += 1
    # Drawn at random, not always the same one: over 8 epochs each bus
    # clip meets at least two of its three possible partners.
    for k in range(SCENES["bus"]):
        assert len(partners[f"bus-{k}"]) >= 2, partners[f"bus-{k}"]


def test_partners_repeat_with_the_seed_and_epoch(train_script, train_set):
    _, first = views(train_script, train_set, "cached", True, seed=3)
    _, again = views(train_script, train_set, "cached", True, seed=3)
    _, other = views(train_script, train_set, "cached", True, seed=4)
    draws = [[v["partner_id"] for v in run] for run in (first, again, other)]
    assert draws[0] == draws[1]
    assert draws[0] != draws[2]


def test_online_teacher_input_is_the_clip_then_its_partner(
    train_script, train_set
):
    keys, seen = views(train_script, train_set, "online", multi_segment=True)
    assert keys == ["partner_id", "teacher_sig"]
    wav_of = {i: row["wav"] for i, row in train_set.data.items()}
    for item in seen[: len(train_set) * 2]:
        clip = load_audio(wav_of[item["id"]], RATE, 2)
        partner = load_audio(wav_of[item["partner_id"]], RATE, 2)
        assert torch.equal(item["teacher_sig"], torch.cat([clip, partner]))


def test_single_segment_online_teacher_input_is_the_clip(
    train_script, train_set
):
    _, seen = views(train_script, train_set, "online", multi_segment=False)
    wav_of = {i: row["wav"] for i, row in train_set.data.items()}
    for item in seen[: len(train_set)]:
        clip = load_audio(wav_of[item["id"]], RATE, 2)
        assert torch.equal(item["teacher_sig"], clip)


def test_consistent_teacher_input_is_the_students_crop(train_script, train_set):
    keys, seen = views(
        train_script, train_set, "online", False, teacher_view="student_input"
    )
    assert keys == ["partner_id", "teacher_sig"]
    for item in seen:
        assert item["teacher_sig"].shape == (RATE // 20, 2)
        assert torch.equal(item["teacher_sig"], item["sig"])
    # The crop moves with the epoch, and the teachers' view with it.
    first_clip = [item["teacher_sig"] for item in seen[:: len(train_set)]]
    assert any(not torch.equal(first_clip[0], view) for view in first_clip)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"teacher_view": "crop"}, "must be one of clip, student_input"),
        (
            {"teacher_view": "student_input", "soft_label_mode": "cached"},
            "needs --soft_label_mode=online",
        ),
        (
            {
                "teacher_view": "student_input",
                "soft_label_mode": "online",
                "multi_segment": True,
            },
            "set --multi_segment=False",
        ),
    ],
)
def test_teacher_view_the_phase_cannot_give_is_refused(settings, message):
    with pytest.raises(SettingError, match=message):
        check_teacher_view(settings)


def test_cached_mode_reads_no_teacher_audio(train_script, train_set):
    # The cache holds the teachers' logits: no audio for them per step.
    keys, _ = views(train_script, train_set, "cached", multi_segment=True)
    assert keys == ["partner_id"]


@pytest.mark.parametrize(
    "phase, split", [("baseline", "train"), ("distill", "valid")]
)
def test_only_the_distillation_train_split_has_teacher_views(
    train_script, train_set, phase, split
):
    hparams = {"phase": phase, "soft_label_mode": "online"}
    assert (
        train_script.teacher_view_keys(hparams, train_set, train_set, split)
        == []
    )
