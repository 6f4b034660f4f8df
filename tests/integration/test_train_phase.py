"""One phase run the SpeechBrain way: train.py with a YAML and overrides."""

import csv
import json

import pytest

from tests.conftest import RECIPE, RECORD_TRAINING_BATCHES, run_script

pytestmark = pytest.mark.slow

SMALL_MODEL = [
    "--sample_rate=8000",
    "--crop_seconds=1.0",
    "--batch_size=16",
    "--num_workers=0",
    "--model_options={first_conv_channels: 16, first_conv_kernel: 8, "
    "block_channels: [16, 16, 16, 16], final_channels: 16}",
    "--embedding_dim=16",
    "--lr=0.003",
]


def baseline_args(data, out, epochs):
    return [
        RECIPE / "train.py",
        RECIPE / "hparams" / "baseline.yaml",
        f"--data_folder={data}",
        f"--output_folder={out}",
        f"--number_of_epochs={epochs}",
        *SMALL_MODEL,
    ]


def logged_epochs(folder):
    lines = (folder / "train_log.txt").read_text().splitlines()
    return [
        int(line.split("epoch: ")[1].split(",")[0])
        for line in lines
        if line.startswith("epoch: ")
    ]


def test_interrupted_training_resumes(tiny_demo, tmp_path):
    out = tmp_path / "baseline"
    run_script(baseline_args(tiny_demo, out, 1))
    assert logged_epochs(out) == [1]
    # A longer schedule continues from the checkpoint of epoch 1.
    run_script(baseline_args(tiny_demo, out, 2))
    assert logged_epochs(out) == [1, 2]
    results = json.loads((out / "test_results.json").read_text())
    assert results["checkpoint_epoch"] == 2
    assert len(results["confusion_matrix"]) == 10
    assert set(results["classwise_accuracy"]) == set(results["labels"])
    assert (out / "confusion_matrix.png").stat().st_size > 0
    assert (out / "save" / "model_spec.json").is_file()
    # SpeechBrain's env.log, written beside the start-up, is there whole.
    env = (out / "env.log").read_text()
    assert env.startswith("SpeechBrain system description")
    assert "CUDA" in env.splitlines()[-1]
    assert not (out / "manifests" / "at_8000Hz").exists()  # data at 8 kHz


def test_phase_at_another_rate_resamples_once(tiny_demo, tmp_path):
    out = tmp_path / "at4k"
    args = [*baseline_args(tiny_demo, out, 1), "--sample_rate=4000"]
    run_script(args)
    copies = out / "manifests" / "at_4000Hz"
    n_clips = len(list((tiny_demo / "audio").glob("*.wav")))
    assert len(list(copies.glob("*.wav"))) == n_clips
    for split in ("train", "valid", "test"):
        with open(copies / f"{split}.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert rows and {r["sample_rate"] for r in rows} == {"4000"}
        assert all(r["wav"].startswith(str(copies)) for r in rows)
    stamps = sorted(p.stat().st_mtime_ns for p in copies.iterdir())
    run_script([*args[:4], "--number_of_epochs=2", *args[5:]])  # resumes
    assert sorted(p.stat().st_mtime_ns for p in copies.iterdir()) == stamps
    assert logged_epochs(out) == [1, 2]


def test_debug_run(tiny_demo, tmp_path):
    # SpeechBrain's --debug: 2 epochs of 2 batches, whatever the schedule.
    out = tmp_path / "debug"
    run_script([*baseline_args(tiny_demo, out, 5), "--debug"])
    assert logged_epochs(out) == [1, 2]
    results = json.loads((out / "test_results.json").read_text())
    assert 0 < results["n_clips"] <= 2 * 8  # two batches of eval_batch_size
    assert (out / "save" / "model_spec.json").is_file()


def test_wrong_class_count_is_named(tiny_demo, tmp_path):
    # Found once the data is prepared: one line, also in the error file,
    # with the log the phase had started.
    error_file = tmp_path / "error.json"
    result = run_script(
        [*baseline_args(tiny_demo, tmp_path / "x", 1), "--n_classes=7"],
        env={"SPEECHBRAIN_KD_ERROR_FILE": str(error_file)},
        check=False,
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("--n_classes=7 was asked for")
    assert "has 10 scenes" in last
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x" / "save" / "model_spec.json").exists()
    report = json.loads(error_file.read_text())
    assert report == {"error": last, "log": str(tmp_path / "x" / "log.txt")}


def test_unknown_model_family_is_refused_before_any_work(tiny_demo, tmp_path):
    out = tmp_path / "x"
    result = run_script(
        [*baseline_args(tiny_demo, out, 1), "--model=cnn14"], check=False
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "unknown model family 'cnn14'" in output
    assert "logmel_cnn, raw_waveform_cnn" in output
    assert not (out / "manifests").exists()


def test_logmel_family_by_name(tiny_demo, tmp_path):
    out = tmp_path / "logmel"
    run_script(
        [
            *baseline_args(tiny_demo, out, 1)[:5],
            "--sample_rate=8000",
            "--crop_seconds=1.0",
            "--num_workers=0",
            "--model=logmel_cnn",
            "--model_options={n_mels: 16, n_fft: 256, conv_channels: [8, 16]}",
            "--embedding_dim=16",
        ]
    )
    spec = json.loads((out / "save" / "model_spec.json").read_text())
    assert spec["embedding_model"]["class"].endswith("LogMelCNN")
    assert spec["embedding_model"]["config"]["n_mels"] == 16
    assert spec["classifier"]["config"]["n_classes"] == 10


def free_port():
    """A loopback port nobody listens on (avoids rendezvous collisions)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_processes_with_torchrun(tiny_demo, tmp_path):
    """DDP on the CPU (gloo): each process trains on its own share.

    The batches each process's Brain receives are recorded in its loop:
    the two shares are disjoint and together cover the training split
    (but for the last, dropped, partial batches); the test split is
    evaluated in full and its results written once.
    """
    import csv

    out = tmp_path / "ddp"
    wrapper = tmp_path / "record.py"
    wrapper.write_text(RECORD_TRAINING_BATCHES)
    record = tmp_path / "batches"
    args = [str(a) for a in baseline_args(tiny_demo, out, 1)]
    result = run_script(
        [
            "-m",
            "torch.distributed.run",
            "--nnodes=1",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint=127.0.0.1:{free_port()}",
            "--nproc_per_node=2",
            wrapper,
            record,
            *args,
            "--device=cpu",
            "--distributed_backend=gloo",
        ],
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert logged_epochs(out) == [1]  # one log, written by the main process
    shares = [
        [
            clip
            for batch in json.loads(
                (tmp_path / f"batches.{rank}.json").read_text()
            )
            for clip in batch
        ]
        for rank in (0, 1)
    ]

    def manifest_ids(split):
        with open(out / "manifests" / f"{split}.csv", newline="") as f:
            return [row["ID"] for row in csv.DictReader(f)]

    train = set(manifest_ids("train"))
    assert all(share for share in shares)
    assert not set(shares[0]) & set(shares[1])
    assert all(len(set(share)) == len(share) for share in shares)
    covered = set(shares[0]) | set(shares[1])
    assert covered <= train
    batch_size = 16  # SMALL_MODEL's, per process
    assert len(train) - len(covered) < 2 * batch_size  # dropped remainders
    results = json.loads((out / "test_results.json").read_text())
    assert results["n_clips"] == len(manifest_ids("test"))


def test_channel_count_the_data_cannot_give_names_a_file(tiny_demo, tmp_path):
    error_file = tmp_path / "error.json"
    result = run_script(
        [*baseline_args(tiny_demo, tmp_path / "x", 1), "--n_channels=3"],
        env={"SPEECHBRAIN_KD_ERROR_FILE": str(error_file)},
        check=False,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert ".wav: cannot turn a 2-channel signal into 3 channels" in output
    # An error inside training: its type and message for the caller.
    report = json.loads(error_file.read_text())
    assert report["error"].startswith("ValueError: ")
    assert "cannot turn a 2-channel signal into 3 channels" in report["error"]
    assert report["log"] == str(tmp_path / "x" / "log.txt")


def test_label_encoder_warns_nothing(tiny_demo, tmp_path):
    # SpeechBrain warns about a missing expect_len once per encoder copy:
    # once per loader worker and epoch unless the phase sets it.
    result = run_script(
        [*baseline_args(tiny_demo, tmp_path / "w", 1), "--num_workers=2"]
    )
    assert "expect_len" not in result.stdout + result.stderr


HOLD_FOLDER = """
import sys, time
from speechbrain_kd.experiment import sole_writer
with sole_writer(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""


def test_second_writer_is_refused_until_the_first_is_killed(
    tiny_demo, tmp_path
):
    import subprocess
    import sys

    out = tmp_path / "one"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_FOLDER, str(out)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        for args in (
            baseline_args(tiny_demo, out, 1),
            [RECIPE / "pipeline.py", f"--output_folder={out}", "--debug"],
        ):
            refused = run_script(args, check=False)
            assert refused.returncode == 1
            assert f"is being written by another run (pid {holder.pid}" in (
                refused.stderr
            )
            assert "Traceback" not in refused.stderr
        assert not (out / "save").exists()  # nothing written meanwhile
    finally:
        holder.kill()  # SIGKILL: no clean-up runs
        holder.wait()
    run_script([*baseline_args(tiny_demo, out, 1), "--debug"])
    assert (out / "test_results.json").is_file()
