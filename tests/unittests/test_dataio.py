"""Audio loading, cropping and the SpeechBrain audio pipeline."""

import csv

import numpy as np
import pytest
import soundfile
import torch
from speechbrain.dataio.dataset import DynamicItemDataset

import speechbrain_kd.audio
from speechbrain_kd.audio import adapt_channels, crop, load_audio, load_crop
from speechbrain_kd.dataio import audio_pipeline


def write_sine(path, rate, seconds=0.5, freq=1000.0, channels=1):
    t = np.arange(int(rate * seconds)) / rate
    wav = np.stack(
        [
            (0.5 / (c + 1)) * np.sin(2 * np.pi * freq * t)
            for c in range(channels)
        ],
        axis=1,
    )
    soundfile.write(path, wav, rate, subtype="PCM_16")
    return wav


def peak_frequency(x, rate):
    spectrum = np.abs(np.fft.rfft(x))
    return np.fft.rfftfreq(len(x), 1 / rate)[spectrum.argmax()]


def test_load_audio_resamples_and_keeps_the_pitch(tmp_path):
    write_sine(tmp_path / "a.wav", 32000, freq=1000.0)
    wav = load_audio(tmp_path / "a.wav", 16000, 1)
    assert wav.dtype == torch.float32 and wav.shape == (8000, 1)
    assert peak_frequency(wav[:, 0].numpy(), 16000) == pytest.approx(
        1000, abs=5
    )


def test_load_audio_adapts_channels(tmp_path):
    stereo = write_sine(tmp_path / "s.wav", 8000, channels=2)
    mono = load_audio(tmp_path / "s.wav", 8000, 1)
    np.testing.assert_allclose(
        mono[:, 0].numpy(), stereo.mean(axis=1), atol=1e-4
    )
    write_sine(tmp_path / "m.wav", 8000)
    both = load_audio(tmp_path / "m.wav", 8000, 2)
    assert torch.equal(both[:, 0], both[:, 1])


def test_unreadable_or_missing_file_is_named(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    with pytest.raises(RuntimeError, match="bad.wav"):
        load_audio(bad, 8000, 1)
    with pytest.raises(RuntimeError, match="absent.wav"):
        load_audio(tmp_path / "absent.wav", 8000, 1)
    with pytest.raises(ValueError, match="sample_rate"):
        load_audio(bad, 0, 1)


def test_adapt_channels_rejects_impossible_counts():
    with pytest.raises(ValueError, match="2-channel signal into 3"):
        adapt_channels(torch.zeros(10, 2), 3)
    with pytest.raises(ValueError, match="at least 1"):
        adapt_channels(torch.zeros(10), 0)


def test_random_crop_follows_torch_seed_and_stays_inside():
    wav = torch.arange(1000).unsqueeze(-1)
    torch.manual_seed(0)
    first = [crop(wav, 100) for _ in range(5)]
    torch.manual_seed(0)
    second = [crop(wav, 100) for _ in range(5)]
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    starts = {int(c[0]) for c in first}
    assert len(starts) > 1  # not always the same place
    for c in first:
        assert c.shape == (100, 1)
        assert torch.equal(c[:, 0], torch.arange(c[0, 0], c[0, 0] + 100))
    g1 = torch.Generator().manual_seed(1)
    g2 = torch.Generator().manual_seed(1)
    assert torch.equal(crop(wav, 10, generator=g1), crop(wav, 10, generator=g2))


def test_short_clip_is_looped_and_bad_crops_refused():
    wav = torch.tensor([[1.0, -1.0], [2.0, -2.0], [3.0, -3.0]])
    looped = crop(wav, 7)
    assert looped[:, 0].tolist() == [1, 2, 3, 1, 2, 3, 1]
    assert torch.equal(crop(wav, 3), wav)
    with pytest.raises(ValueError, match="start=5"):
        crop(torch.arange(10), 6, start=5)
    with pytest.raises(ValueError, match="at least 1 sample"):
        crop(wav, 0)
    with pytest.raises(ValueError, match="empty"):
        crop(torch.zeros(0, 2), 4)


def make_dataset(tmp_path, pipeline, rate=16000, seconds=1.0):
    path = tmp_path / "clip.wav"
    full = write_sine(path, rate, seconds=seconds, freq=440.0, channels=2)
    data = DynamicItemDataset({"c1": {"wav": str(path)}})
    data.add_dynamic_item(pipeline)
    data.set_output_keys(["sig"])
    return data, torch.from_numpy(full).float()


def test_pipeline_random_crop_is_a_seeded_window_of_the_clip(tmp_path):
    data, _ = make_dataset(tmp_path, audio_pipeline(16000, 2, 0.25))
    full = load_audio(tmp_path / "clip.wav", 16000, 2)
    torch.manual_seed(3)
    sig = data[0]["sig"]
    torch.manual_seed(3)
    assert torch.equal(data[0]["sig"], sig)
    assert sig.shape == (4000, 2)
    starts = [
        s
        for s in range(len(full) - 4000 + 1)
        if torch.equal(full[s : s + 4000], sig)
    ]
    assert starts  # a window of the clip, not a padded copy


def test_keyed_crops_follow_seed_epoch_and_clip_not_global_state(tmp_path):
    from speechbrain_kd.dataio import ClipDraws

    path = tmp_path / "clip.wav"
    ramp = np.arange(16000, dtype=np.float32) / 16000  # the value is the time
    soundfile.write(path, np.stack([ramp, ramp], 1), 16000, subtype="FLOAT")
    draws = ClipDraws(seed=5)
    pipeline = audio_pipeline(16000, 2, 0.01, draws=draws)  # 160 samples

    def crops(clip_id, epoch, global_seed):
        draws.set_epoch(epoch)
        torch.manual_seed(global_seed)
        return pipeline(str(path), clip_id)

    first = crops("c1", 1, global_seed=0)
    assert torch.equal(crops("c1", 1, global_seed=99), first)
    # Another epoch, another clip, another run seed: other starts.
    assert not torch.equal(crops("c1", 2, global_seed=0), first)
    assert not torch.equal(crops("c2", 1, global_seed=0), first)
    draws.seed = 6
    assert not torch.equal(crops("c1", 1, global_seed=0), first)
    # Over epochs the starts spread over the clip (no fixed crop).
    draws.seed = 5
    starts = {
        round(float(crops("c1", epoch, global_seed=0)[0, 0]) * 16000)
        for epoch in range(60)
    }
    assert len(starts) > 50 and min(starts) < 4000 and max(starts) > 12000


def test_pipeline_centre_crop_and_full_clip(tmp_path):
    data, _ = make_dataset(
        tmp_path, audio_pipeline(16000, 2, 0.5, random_crop=False)
    )
    full = load_audio(tmp_path / "clip.wav", 16000, 2)
    assert torch.equal(data[0]["sig"], full[4000:12000])
    torch.manual_seed(1)
    first = data[0]["sig"]
    torch.manual_seed(2)
    assert torch.equal(data[0]["sig"], first)  # no randomness
    whole, _ = make_dataset(tmp_path, audio_pipeline(8000, 1))
    assert whole[0]["sig"].shape == (8000, 1)  # resampled, mixed down


def test_pipeline_refuses_an_empty_crop():
    with pytest.raises(ValueError, match="crop_seconds=1e-05"):
        audio_pipeline(8000, 1, crop_seconds=1e-5)


def write_noise(path, rate, frames, channels, subtype, seed=0):
    """Random audio (every sample differs), in ``subtype``'s precision."""
    noise = np.random.default_rng(seed).uniform(-0.9, 0.9, (frames, channels))
    fmt = "FLAC" if subtype == "FLAC" else "WAV"
    soundfile.write(
        path,
        noise,
        rate,
        subtype="PCM_16" if fmt == "FLAC" else subtype,
        format=fmt,
    )
    return path


@pytest.mark.parametrize(
    "rate, have, want, subtype",
    [
        (8000, 1, 1, "PCM_16"),
        (16000, 2, 2, "PCM_16"),
        (16000, 1, 2, "PCM_24"),
        (44100, 2, 1, "FLOAT"),
        (48000, 4, 2, "PCM_16"),
        (48000, 4, 1, "FLAC"),
    ],
)
def test_partial_read_equals_read_then_crop(
    tmp_path, rate, have, want, subtype
):
    # An odd free room (frames - n), so that a centre off by one shows.
    path = write_noise(tmp_path / "n.wav", rate, rate // 2 + 1, have, subtype)
    full = load_audio(path, rate, want)
    n = rate // 5
    last = len(full) - n
    for start in (0, 1, last // 3, last - 1, last):
        assert torch.equal(
            load_crop(path, rate, want, n, start=start),
            crop(full, n, start=start),
        )
    centre = load_crop(path, rate, want, n, start="centre")
    assert torch.equal(centre, full[last // 2 : last // 2 + n])
    # The same random draw as before the partial read: same seed, same crop.
    pipeline = audio_pipeline(rate, want, crop_seconds=n / rate)
    for seed in range(5):
        torch.manual_seed(seed)
        new = pipeline(str(path))
        torch.manual_seed(seed)
        assert torch.equal(new, crop(full, n))
        assert new.dtype == torch.float32 and new.is_contiguous()
    with pytest.raises(ValueError, match=f"start={last + 1} is outside"):
        load_crop(path, rate, want, n, start=last + 1)


def test_partial_read_does_not_read_the_whole_file(tmp_path, monkeypatch):
    path = write_noise(tmp_path / "n.wav", 16000, 16000, 2, "PCM_16")
    expected = crop(load_audio(path, 16000, 2), 4000, start=123)

    def whole_file(*args, **kwargs):
        raise AssertionError("read the whole file")

    monkeypatch.setattr(speechbrain_kd.audio, "load_audio", whole_file)
    assert torch.equal(load_crop(path, 16000, 2, 4000, start=123), expected)
    assert audio_pipeline(16000, 2, crop_seconds=0.25)(str(path)).shape == (
        4000,
        2,
    )
    with pytest.raises(AssertionError, match="whole file"):
        load_crop(path, 8000, 2, 2000)  # resampling needs the whole clip


def test_every_crop_start_is_reachable_and_uniform(tmp_path):
    # A 10-sample ramp: the first sample of a crop says where it starts.
    path = tmp_path / "ramp.wav"
    soundfile.write(path, np.arange(10) / 16, 8000, subtype="FLOAT")
    data = DynamicItemDataset({"c1": {"wav": str(path)}})
    data.add_dynamic_item(audio_pipeline(8000, 1, crop_seconds=7 / 8000))
    data.set_output_keys(["sig"])
    torch.manual_seed(0)
    starts = []
    for _ in range(400):
        sig = data[0]["sig"][:, 0]
        start = int(round(float(sig[0]) * 16))
        assert torch.equal(sig * 16, torch.arange(start, start + 7.0))
        starts.append(start)
    counts = np.bincount(starts, minlength=4)
    assert len(counts) == 4  # never past the last valid start (3)
    assert counts.min() > 60  # 100 expected at each of 0, 1, 2, 3


def test_short_and_resampled_files_still_crop(tmp_path):
    short = write_noise(tmp_path / "short.wav", 8000, 300, 2, "PCM_16")
    looped = load_crop(short, 8000, 2, 700)
    assert torch.equal(looped, crop(load_audio(short, 8000, 2), 700))
    write_sine(tmp_path / "hi.wav", 32000, seconds=1.0, freq=1000.0)
    full = load_audio(tmp_path / "hi.wav", 16000, 1)
    torch.manual_seed(4)
    sig = load_crop(tmp_path / "hi.wav", 16000, 1, 4000)
    torch.manual_seed(4)
    assert torch.equal(sig, crop(full, 4000))
    assert sig.shape == (4000, 1)
    assert peak_frequency(sig[:, 0].numpy(), 16000) == pytest.approx(
        1000, abs=5
    )
    with pytest.raises(RuntimeError, match="absent.wav"):
        load_crop(tmp_path / "absent.wav", 8000, 1, 10)


def at_rate_manifest(folder, rates):
    """Clips of 0.25 s at ``rates`` (one per clip), 2 channels, a manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["ID,duration,wav,scene,sample_rate"]
    for n, rate in enumerate(rates):
        path = write_noise(
            folder / f"c{n}.wav", rate, rate // 4, 2, "PCM_16", n
        )
        lines.append(f"c{n},0.25,{path},park,{rate}")
    manifest = folder / "train.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def test_resampled_once_equals_resampled_at_every_read(tmp_path):
    from speechbrain_kd.manifests import manifest_at_rate

    manifest = at_rate_manifest(tmp_path / "data", [48000, 16000, 44100])
    out = manifest_at_rate(manifest, 16000, tmp_path / "at16k")
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["ID"] for r in rows] == ["c0", "c1", "c2"]
    assert {r["sample_rate"] for r in rows} == {"16000"}
    assert rows[1]["wav"] == str(tmp_path / "data" / "c1.wav")  # kept
    for row, source in zip(rows, ["c0", "c1", "c2"], strict=True):
        for channels in (1, 2):
            assert torch.equal(
                load_audio(row["wav"], 16000, channels),
                load_audio(
                    tmp_path / "data" / f"{source}.wav", 16000, channels
                ),
            )
    # A crop of the copy is the crop the phase took before, same draw.
    pipeline = audio_pipeline(16000, 2, crop_seconds=0.1)
    torch.manual_seed(3)
    old = pipeline(str(tmp_path / "data" / "c0.wav"))
    torch.manual_seed(3)
    assert torch.equal(pipeline(rows[0]["wav"]), old)


def test_resampled_copies_are_reused_and_remade_when_stale(tmp_path):
    from speechbrain_kd.manifests import manifest_at_rate

    manifest = at_rate_manifest(tmp_path / "data", [16000, 16000])
    folder = tmp_path / "at8k"
    out = manifest_at_rate(manifest, 8000, folder)
    copies = sorted(folder.glob("*.wav"))
    stamps = [p.stat().st_mtime_ns for p in [out, *copies]]
    assert manifest_at_rate(manifest, 8000, folder) == out
    assert [p.stat().st_mtime_ns for p in [out, *copies]] == stamps
    # A source changed on disk: its copy is remade, the other one kept.
    write_noise(tmp_path / "data" / "c1.wav", 16000, 2000, 2, "PCM_16", 9)
    manifest_at_rate(manifest, 8000, folder)
    assert copies[0].stat().st_mtime_ns == stamps[1]
    assert torch.equal(
        load_audio(copies[1], 8000, 2),
        load_audio(tmp_path / "data" / "c1.wav", 8000, 2),
    )
    # A copy deleted is remade; nothing half-written is left behind.
    copies[0].unlink()
    manifest_at_rate(manifest, 8000, folder)
    assert copies[0].is_file()
    out.unlink()
    assert manifest_at_rate(manifest, 8000, folder) == out and out.is_file()
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_resampling_a_missing_or_bad_file_names_it(tmp_path):
    from speechbrain_kd.manifests import manifest_at_rate

    manifest = at_rate_manifest(tmp_path / "data", [16000])
    (tmp_path / "data" / "c0.wav").unlink()
    with pytest.raises(FileNotFoundError, match="c0.wav of clip c0"):
        manifest_at_rate(manifest, 8000, tmp_path / "at8k")
    (tmp_path / "data" / "c0.wav").write_text("not audio")
    with pytest.raises(RuntimeError, match="c0.wav"):
        manifest_at_rate(manifest, 8000, tmp_path / "at8k")
    assert not list((tmp_path / "at8k").glob("*.wav"))
    bare = tmp_path / "bare.csv"
    bare.write_text("ID,wav\nc0,/x.wav\n")
    with pytest.raises(ValueError, match="sample_rate"):
        manifest_at_rate(bare, 8000, tmp_path / "at8k")


def test_file_channel_error_is_whole(tmp_path):
    path = write_noise(tmp_path / "two.wav", 8000, 100, 2, "PCM_16")
    for read in (
        lambda: load_audio(path, 8000, 3),
        lambda: load_crop(path, 8000, 3, 50),
    ):
        with pytest.raises(ValueError) as error:
            read()
        assert str(error.value) == (
            f"{path}: cannot turn a 2-channel signal into 3 channels (set "
            "n_channels to a count this recording can give: 1, or at most "
            "its own channel count)"
        )


def test_file_shorter_than_its_header_is_named():
    from speechbrain_kd.audio import _read_frames

    class Truncated:
        """An open file whose header promises 1000 frames; 600 are there."""

        frames = 1000

        def seek(self, frame):
            self.at = frame

        def read(self, n, dtype, always_2d):
            return np.zeros((max(min(n, 600 - self.at), 0), 1), dtype)

    with pytest.raises(RuntimeError) as error:
        _read_frames(Truncated(), 500, 500, "cut.wav")
    assert str(error.value) == (
        "cannot read audio file cut.wav: its header says 1000 frames but "
        "it ends at frame 600"
    )


def test_whole_file_crops_take_the_start_asked_for(tmp_path):
    # A file at another rate is read whole: "centre", a start, a generator.
    path = tmp_path / "hi.wav"
    write_sine(path, 16000, seconds=0.5, freq=300.0)
    full = load_audio(path, 8000, 1)
    room = len(full) - 1000
    centre = load_crop(path, 8000, 1, 1000, start="centre")
    assert torch.equal(centre, full[room // 2 : room // 2 + 1000])
    assert torch.equal(load_crop(path, 8000, 1, 1000, start=7), full[7:1007])
    drawn = load_crop(
        path, 8000, 1, 1000, generator=torch.Generator().manual_seed(3)
    )
    again = crop(full, 1000, generator=torch.Generator().manual_seed(3))
    assert torch.equal(drawn, again)
    # A clip shorter than the crop: "centre" is its start, then looped.
    short = write_noise(tmp_path / "short.wav", 8000, 300, 1, "PCM_16")
    clip = load_audio(short, 8000, 1)
    looped = load_crop(short, 8000, 1, 700, start="centre")
    assert torch.equal(looped, torch.cat([clip, clip, clip])[:700])


def test_crop_edges():
    wav = torch.arange(10.0)[:, None]
    assert torch.equal(crop(wav, 1, start=9), wav[9:])  # one sample
    pipeline = audio_pipeline(10, 1, crop_seconds=0.1)  # one sample at 10 Hz
    assert pipeline  # builds
    short = torch.arange(3.0)[:, None]
    assert torch.equal(
        crop(short, 5, start=0)[:, 0], torch.tensor([0.0, 1.0, 2.0, 0.0, 1.0])
    )
    with pytest.raises(ValueError) as error:
        crop(short, 5, start=1)
    assert str(error.value) == (
        "start=1 for a 5-sample crop of a 3-sample clip: a short clip is "
        "looped from 0"
    )
    with pytest.raises(ValueError) as error:
        crop(torch.zeros(0, 1), 4)
    assert str(error.value) == "cannot crop an empty waveform"


def test_fitting_crop_warns_only_when_longer(caplog):
    from speechbrain_kd.audio import fitting_crop

    with caplog.at_level("WARNING", "speechbrain_kd.audio"):
        assert fitting_crop(3.0, [3.0, 5.0]) == 3.0
        assert not caplog.records
        assert fitting_crop(4.0, [3.25, 5.0]) == 3.25
    assert [r.getMessage() for r in caplog.records] == [
        "crop_seconds=4.0 is longer than the shortest training clip "
        "(3.25 s): cropping to 3.25 s"
    ]


def test_first_epoch_draws_are_those_of_epoch_zero():
    from speechbrain_kd.dataio import ClipDraws

    fresh, told = ClipDraws(5), ClipDraws(5)
    told.set_epoch(0)
    a = torch.randint(10**9, (3,), generator=fresh.generator("c", "crop"))
    b = torch.randint(10**9, (3,), generator=told.generator("c", "crop"))
    assert torch.equal(a, b)


def test_loader_defaults():
    from speechbrain_kd.dataio import loader_options

    assert loader_options({}) == {"num_workers": 0}
    assert loader_options({"num_workers": "auto"}) == {"num_workers": 0}
    # On a GPU: one core left to the training process, at most 16 workers.
    one_core_each = loader_options(
        {"num_workers": "auto"}, "cuda", processes=4, cores=4
    )
    assert one_core_each["num_workers"] == 0
    many = loader_options({"num_workers": "auto"}, "cuda", cores=64)
    assert many["num_workers"] == 16


def test_resampled_copies_follow_the_manifest(tmp_path):
    import os
    import shutil

    from speechbrain_kd.manifests import manifest_at_rate

    manifest = at_rate_manifest(tmp_path / "data", [16000, 16000])
    folder = tmp_path / "nested" / "at8k"  # parents made too
    out = manifest_at_rate(manifest, 8000, folder)
    assert (folder / "sources.json").is_file()
    # Another column changed: the copy of the manifest follows.
    manifest.write_text(manifest.read_text().replace("park", "tram"))
    with open(manifest_at_rate(manifest, 8000, folder), newline="") as f:
        assert {row["scene"] for row in csv.DictReader(f)} == {"tram"}
    # Another source file of the same size and time: remade (path stamped).
    other = tmp_path / "data" / "other.wav"
    write_noise(other, 16000, 4000, 2, "PCM_16", 7)
    shutil.copystat(tmp_path / "data" / "c1.wav", other)
    source = tmp_path / "data" / "c1.wav"
    assert os.stat(other).st_size == os.stat(source).st_size
    manifest.write_text(manifest.read_text().replace(str(source), str(other)))
    manifest_at_rate(manifest, 8000, folder)
    assert torch.equal(
        load_audio(folder / "c1.wav", 8000, 2), load_audio(other, 8000, 2)
    )
    assert out == folder / "train.csv"


def test_missing_source_names_the_manifest(tmp_path):
    from speechbrain_kd.manifests import manifest_at_rate

    manifest = at_rate_manifest(tmp_path / "data", [16000])
    (tmp_path / "data" / "c0.wav").unlink()
    with pytest.raises(FileNotFoundError) as error:
        manifest_at_rate(manifest, 8000, tmp_path / "at8k")
    assert str(error.value).startswith(
        f"{manifest}: audio file {tmp_path / 'data' / 'c0.wav'} of clip c0 "
        "cannot be read: "
    )
