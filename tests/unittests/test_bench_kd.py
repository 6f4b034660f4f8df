"""benchmarks/bench_kd.py on a tiny configuration: every figure is there.

No timing is checked (speed lives in the benchmark's own output): only that
each measurement runs, and gives a finite, positive number.
"""

import doctest
import importlib.util
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY_MODELS = {
    "raw_waveform_cnn": {
        "first_conv_channels": 8,
        "first_conv_kernel": 8,
        "block_channels": [8, 8],
        "final_channels": 8,
    },
    "logmel_cnn": {"n_mels": 16, "n_fft": 256, "conv_channels": [8]},
    "mobile_logmel_cnn": {"n_mels": 16, "n_fft": 256, "conv_channels": [8]},
}
TINY_OVERRIDES = {
    "sample_rate": 8000,
    "crop_seconds": 0.5,
    "batch_size": 4,
    "eval_batch_size": 4,
    "embedding_dim": 8,
}


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "bench_kd", ROOT / "benchmarks" / "bench_kd.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_config(bench, folder):
    return bench.bench_config(
        "demo",
        folder,
        clips_per_scene=8,
        seconds=1.0,
        scenes=["park", "metro", "tram"],
        overrides=TINY_OVERRIDES,
        models=TINY_MODELS,
    )


def test_config_follows_the_preset_and_the_overrides(bench, tmp_path):
    config = tiny_config(bench, tmp_path)
    assert config["settings"]["sample_rate"] == 8000
    assert config["data"]["sample_rate"] == 8000
    assert config["settings"]["num_workers"] == "auto"  # the phases' own
    assert config["family_options"] == TINY_MODELS
    paper = bench.bench_config("paper", tmp_path / "paper")
    assert paper["settings"]["batch_size"] == 24
    assert paper["settings"]["num_workers"] == "auto"
    assert paper["data"] == {
        "seconds": 10.0,
        "channels": 2,
        "clips_per_scene": 8,
        "scenes": None,
        "sample_rate": 48000,
    }


def test_every_ratio_is_measured_finite_and_positive(bench, tmp_path):
    report = bench.run_benchmark(tiny_config(bench, tmp_path), repeats=1)
    assert list(report["ratios"]) == list(bench.RATIO_KEYS)
    for key, value in report["ratios"].items():
        assert math.isfinite(value) and value > 0, key
    for key, value in report["figures"].items():
        assert math.isfinite(value) and value >= 0, key
    assert set(report["targets"]) <= set(report["ratios"])
    assert set(report["precision"]) == set(TINY_MODELS)  # every family
    for family, out in report["precision"].items():
        assert set(bench.PRECISIONS) <= set(out), family
        assert out["fp32"]["step_ms"] > 0
        for name, entry in out.items():
            # A time, or why there is none (fp16 on a CPU): never a crash.
            assert "step_ms" in entry or len(entry) == 1, (family, name)
    assert report["errors"] == {}
    json.dumps(report)  # what --json writes
    printed = bench.format_report(report)
    assert all(key in printed for key in bench.RATIO_KEYS)


def test_unknown_measurement_is_refused(bench, tmp_path):
    with pytest.raises(ValueError, match="unknown measurement"):
        bench.run_benchmark(tiny_config(bench, tmp_path), only=["gpu"])


def test_doctests(bench, request):
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    globs = {"getfixture": request.getfixturevalue}
    tests = finder.find(bench, globs=dict(vars(bench), **globs))
    assert sum(len(t.examples) for t in tests) > 5
    for test in tests:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def test_inference_table_holds_every_format_and_thread_count(bench, tmp_path):
    pytest.importorskip("onnxruntime")
    report = bench.run_benchmark(
        tiny_config(bench, tmp_path), repeats=1, only=["inference"]
    )
    table = report["inference"]
    assert [name.split(", ")[0] for name in table] == [
        "pytorch fp32",
        "pytorch fp32",
        "onnxruntime fp32",
        "onnxruntime fp32",
        "int8",
        "int8",
        "ensemble fp32",
    ]
    for name, row in table.items():
        assert row["ms_per_audio_second"] > 0 and row["clips_per_second"] > 0
        if name.startswith("pytorch"):
            assert row["over_pytorch_fp32"] == 1.0
    assert "int8_over_pytorch_fp32_1_thread" in report["ratios"]
    printed = bench.format_report(report)
    assert "int8, 1 thread" in printed and "x PyTorch fp32" in printed
