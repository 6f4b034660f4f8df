"""Soft labels: online teachers and the cache keyed by clip ID (staleness,
completeness, atomic writes, lookups)."""

import csv
import logging
import re

import numpy as np
import pytest
import soundfile
import torch
from speechbrain.dataio.batch import PaddedBatch

from speechbrain_kd.audio import crop, load_audio
from speechbrain_kd.soft_labels import (
    OnlineSoftLabels,
    SoftLabelCache,
    make_soft_labels,
)
from speechbrain_kd.teachers import TeacherEnsemble
from tests.unittests.test_teachers import LABELS, RATE, make_phase

SECONDS = 0.5


def write_clip(path, seed):
    rng = np.random.default_rng(seed)
    soundfile.write(path, rng.normal(0, 0.1, (int(RATE * SECONDS), 2)), RATE)


def make_manifest(folder, n=6):
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        path = folder / f"clip{i}.wav"
        write_clip(path, i)
        rows.append({"ID": f"clip{i}", "wav": str(path)})
    manifest = folder / "train.csv"
    with open(manifest, "w", newline="") as f:
        writer = csv.DictWriter(f, ["ID", "wav"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest


@pytest.fixture
def setup(tmp_path):
    teachers = [make_phase(tmp_path / f"t{k}", seed=k) for k in range(2)]
    manifest = make_manifest(tmp_path / "data")
    return tmp_path, teachers, manifest


def add_clip9(tmp_path, manifest):
    """A new clip, ``clip9``, written and appended to ``manifest``."""
    write_clip(tmp_path / "data" / "clip9.wav", 9)
    with open(manifest, "a") as f:
        f.write(f"clip9,{tmp_path / 'data' / 'clip9.wav'}\n")


def build(setup, channels=2, **kwargs):
    tmp_path, teachers, manifest = setup
    ensemble = TeacherEnsemble.from_teacher_folders(teachers, labels=LABELS)
    kwargs.setdefault("batch_size", 4)
    return SoftLabelCache.build_or_load(
        tmp_path / "cache.pt", ensemble, manifest, RATE, channels, **kwargs
    )


def sig_batch(setup, ids, **extra):
    data = setup[0] / "data"
    return PaddedBatch(
        [
            {"id": i, "teacher_sig": load_audio(data / f"{i}.wav", RATE, 2)}
            | {k: v[n] for k, v in extra.items()}
            for n, i in enumerate(ids)
        ]
    )


def test_online_equals_cached_for_the_same_view(setup):
    cache = build(setup)
    ensemble = TeacherEnsemble.from_teacher_folders(setup[1], labels=LABELS)
    batch = sig_batch(setup, ["clip3", "clip0", "clip5"])
    online = OnlineSoftLabels(ensemble).teacher_logits(batch)
    cached = cache.teacher_logits(batch)
    assert cached.shape == (2, 3, 3) and cached.dtype == torch.float32
    assert torch.allclose(online, cached, atol=1e-5)
    # The two teachers differ, so a mix-up of teachers would show.
    assert not torch.allclose(cached[0], cached[1], atol=1e-3)


def test_multi_segment_cache_averages_the_partner(setup):
    single = build(setup)
    multi = build(setup, multi_segment=True)
    one = single.teacher_logits(PaddedBatch([{"id": "clip1"}]))
    two = single.teacher_logits(PaddedBatch([{"id": "clip4"}]))
    batch = PaddedBatch([{"id": "clip1", "partner_id": "clip4"}])
    assert torch.allclose(multi.teacher_logits(batch), (one + two) / 2)
    with pytest.raises(KeyError, match="partner_id"):
        multi.teacher_logits(PaddedBatch([{"id": "clip1"}]))


def test_cache_file_is_plain_and_keyed_by_clip_id(setup):
    build(setup)
    content = torch.load(setup[0] / "cache.pt", weights_only=True)
    assert content["ids"] == [f"clip{i}" for i in range(6)]
    assert content["logits"].shape == (6, 1, 2, 3)
    assert set(content["fingerprint"]) == {
        "teachers",
        "manifest",
        "audio",
        "settings",
    }
    assert content["settings"]["labels"] == LABELS


def test_current_cache_is_reused(setup, monkeypatch):
    build(setup)

    def no_compute(*args, **kwargs):
        raise AssertionError("a current cache must not be recomputed")

    monkeypatch.setattr(
        "speechbrain_kd.soft_label_cache.compute_teacher_logits", no_compute
    )
    build(setup, rebuild="never")
    build(setup)


def test_changed_teacher_checkpoint_invalidates(setup, caplog):
    old = build(setup)
    make_phase(setup[1][1], seed=9, accuracy=0.9)  # a better checkpoint
    with pytest.raises(RuntimeError, match="teachers changed") as error:
        build(setup, rebuild="never")
    assert str(setup[0] / "cache.pt") in str(error.value)
    with caplog.at_level(logging.WARNING, "speechbrain_kd.soft_label_cache"):
        new = build(setup)
    assert "teachers changed" in caplog.text and "rebuilding" in caplog.text
    assert torch.allclose(new.logits[:, :, 0], old.logits[:, :, 0])
    assert not torch.allclose(new.logits[:, :, 1], old.logits[:, :, 1])
    build(setup, rebuild="never")  # the rebuilt file is current


def test_changed_manifest_invalidates(setup):
    tmp_path, _, manifest = setup
    build(setup)
    add_clip9(tmp_path, manifest)
    with pytest.raises(RuntimeError, match=r"manifest .*\(1 clip\(s\) added"):
        build(setup, rebuild="never")
    rebuilt = build(setup)
    assert rebuilt.ids[-1] == "clip9"
    assert rebuilt.teacher_logits(PaddedBatch([{"id": "clip9"}])).shape == (
        2,
        1,
        3,
    )


def test_changed_audio_invalidates(setup):
    build(setup)
    write_clip(setup[0] / "data" / "clip2.wav", 42)  # new content, same path
    with pytest.raises(RuntimeError) as error:
        build(setup, rebuild="never")
    assert re.search(
        r"soft-label cache \S+ is stale: audio files changed \(size or "
        r"modification time\)",
        str(error.value),
    )


@pytest.mark.parametrize(
    "change, named",
    [
        ({"channels": 1}, "channels: 2 -> 1"),
        ({"n_crop_views": 2, "crop_seconds": 0.25}, "n_crop_views: 0 -> 2"),
    ],
)
def test_changed_setting_invalidates(setup, change, named):
    build(setup)
    with pytest.raises(RuntimeError, match=named):
        build(setup, rebuild="never", **change)
    build(setup, **change)
    build(setup, rebuild="never", **change)


def test_incomplete_cache_is_rebuilt_or_refused(setup):
    build(setup)
    path = setup[0] / "cache.pt"
    content = torch.load(path, weights_only=True)
    content["ids"] = content["ids"][:-1]
    content["logits"] = content["logits"][:-1]
    torch.save(content, path)
    with pytest.raises(RuntimeError, match=r"incomplete.*clip5"):
        build(setup, rebuild="never")
    assert "clip5" in build(setup).ids


def test_unreadable_cache_is_rebuilt_or_refused(setup):
    path = setup[0] / "cache.pt"
    path.write_bytes(b"not a torch file")
    with pytest.raises(RuntimeError, match="cannot be read"):
        build(setup, rebuild="never")
    assert len(build(setup).ids) == 6


def test_clips_missing_from_the_cache_are_named(setup):
    cache = build(setup, multi_segment=True)
    with pytest.raises(KeyError, match=r"clip77.*batch\.id"):
        cache.teacher_logits(
            PaddedBatch(
                [
                    {"id": "clip1", "partner_id": "clip2"},
                    {"id": "clip77", "partner_id": "clip2"},
                ]
            )
        )
    with pytest.raises(KeyError, match=r"clip88.*batch\.partner_id"):
        cache.teacher_logits(
            PaddedBatch([{"id": "clip1", "partner_id": "clip88"}])
        )


def test_failed_build_leaves_no_file(setup, monkeypatch):
    tmp_path = setup[0]
    calls = []
    forward = TeacherEnsemble.forward

    def fail_on_second_batch(self, wavs, lengths=None):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("teacher crashed midway")
        return forward(self, wavs, lengths)

    monkeypatch.setattr(TeacherEnsemble, "forward", fail_on_second_batch)
    with pytest.raises(RuntimeError, match="midway"):
        build(setup, batch_size=2)
    assert len(calls) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "data",
        "t0",
        "t1",
    ]


def test_failed_rebuild_keeps_the_old_file_whole(setup, monkeypatch):
    build(setup)
    path = setup[0] / "cache.pt"
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk on fire")

    monkeypatch.setattr(
        "speechbrain_kd.soft_label_cache.compute_teacher_logits", broken
    )
    with pytest.raises(OSError):
        build(setup, channels=1)
    assert path.read_bytes() == before
    assert not list(path.parent.glob("*.tmp"))


def test_crop_views_are_cached_and_drawn_at_random(setup):
    generator = torch.Generator().manual_seed(0)
    cache = build(setup, n_crop_views=2, crop_seconds=0.25, generator=generator)
    assert cache.logits.shape == (6, 3, 2, 3)
    ensemble = TeacherEnsemble.from_teacher_folders(setup[1], labels=LABELS)
    wav = load_audio(setup[0] / "data" / "clip2.wav", RATE, 2)
    n = int(0.25 * RATE)
    first = ensemble(crop(wav, n, start=0)[None])[:, 0]
    last = ensemble(crop(wav, n, start=len(wav) - n)[None])[:, 0]
    assert torch.allclose(cache.logits[2, 1], first, atol=1e-5)
    assert torch.allclose(cache.logits[2, 2], last, atol=1e-5)
    seen = set()
    for _ in range(30):
        out = cache.teacher_logits(PaddedBatch([{"id": "clip2"}]))[:, 0]
        seen.update(v for v in range(3) if torch.equal(out, cache.logits[2, v]))
    assert seen == {0, 1, 2}


def test_sample_rate_other_than_the_teachers_is_refused(setup):
    tmp_path, teachers, manifest = setup
    ensemble = TeacherEnsemble.from_teacher_folders(teachers)
    with pytest.raises(ValueError, match="teachers take 8000 Hz"):
        SoftLabelCache.build_or_load(
            tmp_path / "cache.pt", ensemble, manifest, 16000, 2
        )


def test_make_soft_labels_picks_the_mode(setup):
    tmp_path, teachers, manifest = setup
    ensemble = TeacherEnsemble.from_teacher_folders(teachers)
    online = make_soft_labels("online", ensemble)
    assert isinstance(online, OnlineSoftLabels)
    cached = make_soft_labels(
        "cached",
        ensemble,
        path=tmp_path / "cache.pt",
        manifest_csv=manifest,
        sample_rate=RATE,
        channels=2,
    )
    assert isinstance(cached, SoftLabelCache) and len(cached.ids) == 6
    with pytest.raises(ValueError, match="'online' or 'cached'"):
        make_soft_labels("both", ensemble)


def test_cache_read_by_loader_workers_is_the_same(setup):
    from speechbrain_kd.soft_label_cache import compute_teacher_logits

    _, teachers, manifest = setup
    ensemble = TeacherEnsemble.from_teacher_folders(teachers, labels=LABELS)
    args = (ensemble, manifest, RATE, 2, 2, 0.2)
    serial = compute_teacher_logits(*args, batch_size=4, num_workers=0)
    # Two workers, a last batch of 2: clips must keep manifest order.
    workers = compute_teacher_logits(*args, batch_size=4, num_workers=2)
    assert serial.shape == (6, 3, 2, 3)
    assert torch.equal(serial, workers)
    assert not torch.equal(serial[0], serial[1])


def message(error):
    """The text of a raised error (a KeyError's str() adds quotes)."""
    return error.value.args[0]


def test_lookup_messages_are_whole(setup):
    batch = PaddedBatch([{"id": "clip1"}])
    with pytest.raises(KeyError) as error:
        OnlineSoftLabels(None).teacher_logits(batch)
    assert message(error) == (
        "online soft labels need batch.teacher_sig (the teachers' view of "
        "each clip): add it to the training set's output keys"
    )
    with pytest.raises(KeyError) as error:
        build(setup, multi_segment=True).teacher_logits(batch)
    assert message(error) == (
        "multi-segment soft labels need batch.partner_id (a clip of the "
        "same scene for each clip): add it to the training set's output keys"
    )
    unknown = [f"new{i}" for i in range(11)]
    with pytest.raises(KeyError) as error:
        build(setup).teacher_logits(PaddedBatch([{"id": i} for i in unknown]))
    assert message(error) == (
        f"11 clip(s) of the batch are not in the soft-label cache: "
        f"{unknown[:10]} (batch.id); build the cache from the manifest the "
        "training set is read from"
    )


def test_cache_content_errors_are_whole():
    fingerprint = {"teachers": "t"}
    with pytest.raises(ValueError) as error:
        SoftLabelCache(["a", "b"], torch.zeros(2, 1, 3), fingerprint)
    assert message(error) == (
        "cached logits must be [clips=2, views, teachers, classes], got "
        "(2, 1, 3)"
    )
    with pytest.raises(ValueError, match=r"\[clips=3, .*got \(2, 1, 1, 3\)"):
        SoftLabelCache(["a", "b", "c"], torch.zeros(2, 1, 1, 3), fingerprint)
    with pytest.raises(ValueError) as error:
        SoftLabelCache(["a", "a"], torch.zeros(2, 1, 1, 3), fingerprint)
    assert message(error) == "cached clip IDs are not unique"
    # Defaults: one clip, no partner needed.
    cache = SoftLabelCache(["a"], torch.ones(1, 1, 1, 3), fingerprint)
    assert cache.fingerprint == fingerprint and not cache.multi_segment
    out = cache.teacher_logits(PaddedBatch([{"id": "a"}]))
    assert torch.equal(out, torch.ones(1, 1, 3))


@pytest.mark.parametrize(
    "views, crop_seconds, text",
    [
        (-1, None, "n_crop_views must be a non-negative integer, got -1"),
        (1.5, 0.2, "n_crop_views must be a non-negative integer, got 1.5"),
        (2, None, "n_crop_views=2 needs a positive crop_seconds, got None"),
        (2, -0.5, "n_crop_views=2 needs a positive crop_seconds, got -0.5"),
    ],
)
def test_bad_views_are_named(setup, views, crop_seconds, text):
    with pytest.raises(ValueError) as error:
        build(setup, n_crop_views=views, crop_seconds=crop_seconds)
    assert message(error) == text


def test_build_errors_are_whole(setup):
    tmp_path, teachers, manifest = setup
    path = tmp_path / "cache.pt"
    with pytest.raises(ValueError) as error:
        build(setup, rebuild="sometimes")
    assert message(error) == (
        "rebuild must be 'auto' or 'never', not 'sometimes'"
    )
    ensemble = TeacherEnsemble.from_teacher_folders(teachers)
    with pytest.raises(ValueError) as error:
        SoftLabelCache.build_or_load(path, ensemble, manifest, 16000, 2)
    assert message(error) == (
        f"soft-label cache {path}: sample_rate=16000 but the teachers take "
        "8000 Hz: read the clips at the teachers' rate"
    )
    no_wav = tmp_path / "no_wav.csv"
    no_wav.write_text("ID,path\nclip0,x.wav\n")
    with pytest.raises(ValueError) as error:
        SoftLabelCache.build_or_load(path, ensemble, no_wav, RATE, 2)
    assert message(error) == (
        f"{no_wav} needs the columns ID and wav (missing 'wav')"
    )
    gone = tmp_path / "gone.csv"
    gone.write_text(f"ID,wav\nclip3,{tmp_path / 'nowhere.wav'}\n")
    with pytest.raises(FileNotFoundError) as error:
        SoftLabelCache.build_or_load(path, ensemble, gone, RATE, 2)
    assert message(error).startswith(
        f"{gone}: audio file {tmp_path / 'nowhere.wav'} of clip clip3 "
        "cannot be read: "
    )


def test_stale_cache_names_every_cause(setup):
    path = setup[0] / "cache.pt"
    build(setup)
    make_phase(setup[1][1], seed=9, accuracy=0.9)
    with pytest.raises(RuntimeError) as error:
        build(
            setup,
            rebuild="never",
            channels=1,
            n_crop_views=2,
            crop_seconds=0.25,
        )
    assert message(error) == (
        f"soft-label cache {path} is stale: teachers changed (checkpoint "
        "content, model specs or teacher order), settings changed "
        "(channels: 2 -> 1; n_crop_views: 0 -> 2; crop_seconds: None -> "
        f"0.25). Delete {path} to rebuild it, or build it with "
        "rebuild='auto' (on the main process)"
    )
    build(setup, n_crop_views=2, crop_seconds=0.25)
    with pytest.raises(RuntimeError, match=r"\(crop_seconds: 0.25 -> 0.3\)"):
        build(setup, rebuild="never", n_crop_views=2, crop_seconds=0.3)


def test_added_clip_is_named_as_a_manifest_change_only(setup):
    tmp_path, _, manifest = setup
    build(setup)
    add_clip9(tmp_path, manifest)
    with pytest.raises(RuntimeError) as error:
        build(setup, rebuild="never")
    # The audio digest changed too (it lists the clips): not a second cause.
    assert (
        f"is stale: manifest {manifest} changed (1 clip(s) added, 0 "
        "removed). Delete" in message(error)
    )


def test_incomplete_cache_lists_five_missing_clips(setup):
    path = setup[0] / "cache.pt"
    build(setup)
    content = torch.load(path, weights_only=True)
    content["ids"], content["logits"] = [], content["logits"][:0]
    torch.save(content, path)
    with pytest.raises(RuntimeError) as error:
        build(setup, rebuild="never")
    assert message(error).startswith(
        f"soft-label cache {path} is incomplete: 6 clip(s) of {setup[2]} "
        "missing, e.g. ['clip0', 'clip1', 'clip2', 'clip3', 'clip4']. "
    )


class NotATensor:
    """Something a weights-only load refuses to unpickle."""


def test_foreign_or_partial_files_are_not_used(setup):
    path = setup[0] / "cache.pt"
    torch.save({"ids": [], "payload": NotATensor()}, path)
    with pytest.raises(
        RuntimeError, match=f"^soft-label cache {path} cannot be read"
    ):
        build(setup, rebuild="never")
    torch.save({"ids": [], "logits": torch.zeros(0)}, path)
    with pytest.raises(RuntimeError) as error:
        build(setup, rebuild="never")
    assert message(error).startswith(
        f"soft-label cache {path} is not in the format of this version "
        "(format 2). Delete"
    )


def test_cache_says_what_it_did(setup, caplog):
    tmp_path, teachers, manifest = setup
    path = tmp_path / "cache.pt"
    with caplog.at_level(logging.INFO, "speechbrain_kd.soft_label_cache"):
        build(setup, n_crop_views=2, crop_seconds=0.25)
        build(setup, n_crop_views=2, crop_seconds=0.25)
        build(setup, channels=1)
    messages = [r.getMessage() for r in caplog.records]
    assert (
        f"Wrote soft-label cache {path} (6 clips, 3 view(s), 2 teachers)"
        in messages
    )
    assert f"Using soft-label cache {path}" in messages
    assert (
        f"soft-label cache {path} is stale: settings changed (channels: 2 "
        "-> 1; n_crop_views: 2 -> 0; crop_seconds: 0.25 -> None): "
        "rebuilding it" in messages
    )
    content = torch.load(path, weights_only=True)
    assert content["manifest_csv"] == str(manifest)
    assert content["teacher_folders"] == [str(t) for t in teachers]


def test_view_draws_follow_the_given_generator(setup):
    def draws(seed, global_seed):
        torch.manual_seed(global_seed)
        generator = torch.Generator().manual_seed(seed)
        cache = build(
            setup, n_crop_views=1, crop_seconds=0.25, generator=generator
        )
        batch = PaddedBatch([{"id": f"clip{i}"} for i in range(6)] * 4)
        return cache.teacher_logits(batch)

    built = draws(seed=0, global_seed=1)  # built here
    reused = draws(seed=0, global_seed=2)  # loaded: the same generator
    assert torch.equal(built, reused)
    assert not torch.equal(built, draws(seed=5, global_seed=2))


def test_crop_views_start_where_they_say(setup):
    cache = build(setup, n_crop_views=3, crop_seconds=0.25)
    ensemble = TeacherEnsemble.from_teacher_folders(setup[1], labels=LABELS)
    wav = load_audio(setup[0] / "data" / "clip4.wav", RATE, 2)
    n = int(0.25 * RATE)
    room = len(wav) - n
    for view, start in enumerate([0, room // 2, room], start=1):
        expected = ensemble(crop(wav, n, start=start)[None])[:, 0]
        assert torch.allclose(cache.logits[4, view], expected, atol=1e-5)
    # One crop view: the centre crop; two views: both drawn.
    centre = build(setup, n_crop_views=1, crop_seconds=0.25)
    expected = ensemble(crop(wav, n, start=room // 2)[None])[:, 0]
    assert torch.allclose(centre.logits[4, 1], expected, atol=1e-5)
    seen = set()
    for _ in range(20):
        out = centre.teacher_logits(PaddedBatch([{"id": "clip4"}]))[:, 0]
        seen.update(v for v in (0, 1) if torch.equal(out, centre.logits[4, v]))
    assert seen == {0, 1}
    # A crop longer than the clip starts at its beginning (and loops).
    long = build(setup, n_crop_views=1, crop_seconds=1.0)
    expected = ensemble(crop(wav, RATE, start=0)[None])[:, 0]
    assert torch.allclose(long.logits[4, 1], expected, atol=1e-5)


def test_online_teachers_get_the_lengths(setup):
    ensemble = TeacherEnsemble.from_teacher_folders(setup[1], labels=LABELS)
    data = setup[0] / "data"
    short = load_audio(data / "clip0.wav", RATE, 2)[: RATE // 8]
    full = load_audio(data / "clip1.wav", RATE, 2)
    batch = PaddedBatch(
        [
            {"id": "clip0", "teacher_sig": short},
            {"id": "clip1", "teacher_sig": full},
        ]
    )
    out = OnlineSoftLabels(ensemble).teacher_logits(batch)
    alone = ensemble(short[None])[:, 0]
    assert torch.allclose(out[:, 0], alone, atol=1e-5)
    # The padding would change it: the lengths are what keeps it out.
    padded = ensemble(batch.teacher_sig.data)[:, 0]
    assert not torch.allclose(padded, alone, atol=1e-3)


def test_teacher_soft_labels_loads_the_phases(setup):
    from speechbrain_kd.soft_labels import teacher_soft_labels

    tmp_path, teachers, manifest = setup
    online = teacher_soft_labels("online", teachers, LABELS, "cpu")
    assert isinstance(online, OnlineSoftLabels)
    assert online.ensemble.names == ["0:t0", "1:t1"]
    cached = teacher_soft_labels(
        "cached",
        teachers,
        LABELS,
        "cpu",
        path=tmp_path / "cache.pt",
        manifest_csv=manifest,
        sample_rate=RATE,
        channels=2,
        multi_segment=True,
    )
    assert isinstance(cached, SoftLabelCache) and cached.multi_segment
    assert cached.logits.shape == (6, 1, 2, 3)
    with pytest.raises(ValueError, match="match the student's labels"):
        teacher_soft_labels("online", teachers, ["c", "b", "d"], "cpu")


def test_crop_views_cover_the_clip_from_first_to_last_position():
    from speechbrain_kd.soft_label_cache import _crop_start

    # One view: the centre (a whole sample index).
    assert _crop_start(100, 40, 0, 1) == 30
    assert _crop_start(101, 40, 0, 1) == 30
    assert isinstance(_crop_start(101, 40, 0, 1), int)
    # Several views: evenly spaced, the first at 0, the last at the end.
    assert [_crop_start(100, 40, v, 4) for v in range(4)] == [0, 20, 40, 60]
    # A clip no longer than the crop: every view starts at 0.
    for length in (30, 40):
        assert [_crop_start(length, 40, v, 3) for v in range(3)] == [0, 0, 0]
        assert _crop_start(length, 40, 0, 1) == 0
