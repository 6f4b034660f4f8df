"""Audio loading, cropping and the SpeechBrain audio pipeline."""

import numpy as np
import pytest
import soundfile
import torch
from speechbrain.dataio.dataset import DynamicItemDataset

from speechbrain_kd.dataio import (
    adapt_channels,
    audio_pipeline,
    crop,
    load_audio,
)


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
