"""The published configuration end to end, on data at the paper's rate.

A TAU 2019 user runs ``pipeline.py --preset=paper`` on 48 kHz, 10-s binaural
clips. This runs exactly that path on CPU in fp32 (every phase, one short
epoch each: a few minutes on 2 cores) on a tiny demo set of that format, so
that the paper's sizes, rates and crops are the ones CI exercises.
"""

import json

import pytest
import soundfile

from speechbrain_kd.models.spec import build_module
from tests.conftest import preset_run

pytestmark = pytest.mark.slow

PUBLISHED_PARAMETERS = 636_736  # embedding model + classifier, avgmax


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory):
    return preset_run(
        tmp_path_factory.mktemp("paper"),
        {
            "clips_per_scene": 8,
            "seconds": 10.0,
            "sample_rate": 48000,
            "channels": 2,
            "seed": 0,
        },
        "--preset=paper",
        "--number_of_epochs=1",
    )


def spec_of(folder):
    return json.loads((folder / "save" / "model_spec.json").read_text())


def parameters(spec):
    return sum(
        p.numel()
        for name in ("embedding_model", "classifier")
        for p in build_module(spec[name]).parameters()
    )


def test_demo_set_has_the_tau_2019_format(paper_run):
    wavs = sorted((paper_run["data"] / "audio").glob("*.wav"))
    assert len(wavs) == 80
    info = soundfile.info(str(wavs[0]))
    assert (info.samplerate, info.channels, info.frames) == (48000, 2, 480000)


def test_every_phase_ran_with_the_published_settings(paper_run):
    summary, out = paper_run["summary"], paper_run["folder"]
    assert summary["preset"] == "paper"
    assert len(summary["labels"]) == 10
    assert len(summary["specialists"]) == 2
    for phase in ("baseline", "ensemble", "student"):
        results = json.loads((out / phase / "test_results.json").read_text())
        assert results["n_clips"] == 20  # every test clip, full length
    for phase in ("baseline", "student"):
        spec = spec_of(out / phase)
        assert spec["sample_rate"] == 48000
        assert spec["embedding_model"]["config"]["pooling"] == "avgmax"
        assert parameters(spec) == PUBLISHED_PARAMETERS
    for entry in summary["specialists"]:
        spec = spec_of(out / "specialists" / "-".join(entry["pair"]))
        assert spec["embedding_model"]["config"]["pooling"] == "attention"
        assert spec["best_key"] == "pair_accuracy"


def test_phases_saw_the_paper_crop_batch_and_rate(paper_run):
    out = paper_run["folder"]
    # Each phase got only the wiring and the epoch count from the pipeline:
    # everything else is the phase YAML's published value.
    for phase in ("baseline", "distill"):
        folder = out / ("student" if phase == "distill" else phase)
        stamp = json.loads((folder / "pipeline_phase.json").read_text())
        overrides = stamp["settings"]["overrides"]
        assert overrides["model"] == "raw_waveform_cnn"
        assert overrides["model_options"] == {}
        assert "batch_size" not in overrides
        assert "sample_rate" not in overrides
        saved = (folder / "hyperparams.yaml").read_text()
        assert "sample_rate: 48000" in saved
        assert "crop_seconds: 5.0" in saved
        assert "batch_size: 24" in saved
    baseline_log = (out / "baseline" / "train_log.txt").read_text()
    assert "epoch: 1" in baseline_log
