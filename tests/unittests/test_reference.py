"""The linear reference: learns what a linear model can, reused only fresh."""

import json

import numpy as np
import pytest
import soundfile

from speechbrain_kd.reference import (
    evaluate_linear_reference,
    fit_linear_reference,
    logmel_statistics,
    manifest_features,
)


def write_split(folder, split, clips, rng):
    """Quiet low-pass noise is 'park', loud white noise is 'metro'."""
    rows = ["ID,wav,scene"]
    for k in range(clips):
        scene = "park" if k % 2 else "metro"
        noise = rng.standard_normal(4000)
        wav = 0.01 * np.cumsum(noise) / 50 if scene == "park" else 0.5 * noise
        path = folder / f"{split}{k}.wav"
        soundfile.write(path, wav, 8000)
        rows.append(f"{split}{k},{path},{scene}")
    (folder / f"{split}.csv").write_text("\n".join(rows) + "\n")


@pytest.fixture
def manifests(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "valid", "test"):
        write_split(tmp_path, split, 10, rng)
    return tmp_path


def test_statistics_are_band_means_then_deviations():
    import torch

    loud, quiet = torch.randn(8000), 0.01 * torch.randn(8000)
    a, b = logmel_statistics(loud, 8000, 10), logmel_statistics(quiet, 8000, 10)
    assert a.shape == (20,)
    assert (a[:10] > b[:10]).all()  # louder: higher log-mel means
    stereo = torch.stack([loud, loud], dim=1)
    assert np.allclose(logmel_statistics(stereo, 8000, 10), a, atol=1e-5)


def test_reference_separates_what_a_linear_model_can(manifests):
    results = evaluate_linear_reference(
        manifests, 8000, ["metro", "park"], manifests / "ref.json", n_mels=8
    )
    assert results["accuracy"] == 1.0
    assert results["n_clips"] == 10
    assert results["C"] in results["settings"]["Cs"]


def test_C_is_chosen_on_validation():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (60, 5))
    y = (x[:, 0] > 0).astype(int)
    noisy_valid = (x[:30], y[:30])
    _, C, accuracy = fit_linear_reference((x[30:], y[30:]), noisy_valid)
    scores = {}
    for candidate in (0.01, 0.1, 1.0, 10.0):
        _, _, scores[candidate] = fit_linear_reference(
            (x[30:], y[30:]), noisy_valid, Cs=[candidate]
        )
    assert accuracy == max(scores.values())
    assert C == min(c for c, s in scores.items() if s == accuracy)


def test_results_are_reused_only_for_the_same_manifests(manifests):
    out = manifests / "ref.json"
    first = evaluate_linear_reference(manifests, 8000, ["metro", "park"], out)
    stamp = out.stat().st_mtime_ns
    again = evaluate_linear_reference(manifests, 8000, ["metro", "park"], out)
    assert again == first and out.stat().st_mtime_ns == stamp
    # Another test split: the stale results are not used.
    rows = (manifests / "test.csv").read_text().splitlines()
    (manifests / "test.csv").write_text("\n".join(rows[:5]) + "\n")
    fresh = evaluate_linear_reference(manifests, 8000, ["metro", "park"], out)
    assert fresh["n_clips"] == 4
    assert json.loads(out.read_text())["n_clips"] == 4


def test_per_clip_predictions_agree_with_the_results(manifests):
    from speechbrain_kd.metrics import read_predictions

    out = manifests / "ref.json"
    # A quiet clip labelled metro: one error for the predictions to show.
    rows = (manifests / "test.csv").read_text().splitlines()
    rows[2] = rows[2].replace("park", "metro")
    (manifests / "test.csv").write_text("\n".join(rows) + "\n")
    results = evaluate_linear_reference(manifests, 8000, ["metro", "park"], out)
    written = manifests / "test_predictions.csv"
    clips = read_predictions(written)
    assert list(clips) == [f"test{k}" for k in range(10)]
    assert clips["test1"] == ("metro", "park")
    hits = [target == predicted for target, predicted in clips.values()]
    assert results["accuracy"] == sum(hits) / 10 == 0.9
    # Results without their predictions (an older run) are not reused.
    written.unlink()
    stamp = out.stat().st_mtime_ns
    evaluate_linear_reference(manifests, 8000, ["metro", "park"], out)
    assert read_predictions(written) == clips
    assert out.stat().st_mtime_ns != stamp


def test_a_test_scene_outside_the_labels_is_named(manifests):
    with pytest.raises(ValueError, match="test.csv has scenes"):
        evaluate_linear_reference(
            manifests, 8000, ["metro", "tram"], manifests / "ref.json"
        )


def test_default_is_forty_bands(manifests):
    import torch

    assert logmel_statistics(torch.randn(8000), 8000).shape == (80,)
    _, features, _ = manifest_features(manifests / "test.csv", 8000)
    assert features.shape == (10, 80)
    results = evaluate_linear_reference(
        manifests, 8000, ["metro", "park"], manifests / "ref.json"
    )
    assert results["settings"]["n_mels"] == 40


def test_features_are_standardised_before_the_penalty():
    # The scene is in a feature a thousand times smaller than a noise
    # feature: only standardised features let a strong L2 penalty keep it.
    rng = np.random.default_rng(2)
    y = np.repeat([0, 1], 40)
    x = np.stack(
        [1e-3 * (y + rng.normal(0, 0.1, 80)), 1e3 * rng.normal(0, 1, 80)],
        axis=1,
    )
    model, C, accuracy = fit_linear_reference((x, y), (x, y), Cs=[0.01])
    assert accuracy == 1.0
    assert model[-1].C == C == 0.01  # the chosen C is the one fitted


def test_chosen_C_settings_and_validation_accuracy_are_reported(
    manifests, monkeypatch
):
    import speechbrain_kd.reference as reference

    seen = []
    fit = reference.fit_linear_reference

    def spy(train, valid, Cs):
        seen.append((train[0].shape, list(Cs)))
        return fit(train, valid, Cs)

    monkeypatch.setattr(reference, "fit_linear_reference", spy)
    results = reference.evaluate_linear_reference(
        manifests,
        8000,
        ["metro", "park"],
        manifests / "ref.json",
        n_mels=6,
        Cs=[0.5],
    )
    assert seen == [((10, 12), [0.5])]  # 6 bands: 12 statistics
    assert results["C"] == 0.5 and results["valid_accuracy"] == 1.0
    assert results["settings"]["n_mels"] == 6
    # The results say what was fitted, in words a reader can search for.
    assert results["settings"]["model"].startswith("logistic regression")
    assert results["settings"]["sample_rate"] == 8000
    assert len(results["settings"]["manifests"]) == 64  # a SHA-256


def test_empty_manifest_is_named(manifests):
    (manifests / "valid.csv").write_text("ID,wav,scene\n")
    with pytest.raises(ValueError, match=r"valid\.csv lists no clip"):
        evaluate_linear_reference(
            manifests, 8000, ["metro", "park"], manifests / "ref.json"
        )
