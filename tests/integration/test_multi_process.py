"""Two processes (torchrun, gloo on the CPU) against one, phase by phase.

What must be equal is equal: evaluation covers every clip on every process
and is written once, and the soft-label cache (built by the main process
while the others wait) holds the same values. Training itself is not
bit-equal (each process draws its own share of the batches, crops and
BatchNorm statistics), so a trained phase is only checked to run and to
write its outputs once.
"""

import json

import pytest
import torch

from speechbrain_kd import demo_data
from tests.conftest import RECIPE, run_script
from tests.integration.test_train_phase import SMALL_MODEL, free_port
from tests.unittests.test_teachers import make_phase

pytestmark = pytest.mark.slow

SCENES = sorted(demo_data.SCENES)  # the labels a phase on the demo set has


def phase_command(yaml, data, out, processes, *extra):
    launcher = []
    if processes > 1:
        launcher = [
            "-m",
            "torch.distributed.run",
            "--nnodes=1",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint=127.0.0.1:{free_port()}",
            f"--nproc_per_node={processes}",
        ]
    return [
        *launcher,
        RECIPE / "train.py",
        RECIPE / "hparams" / yaml,
        f"--data_folder={data}",
        f"--output_folder={out}",
        "--device=cpu",
        *(["--distributed_backend=gloo"] if processes > 1 else []),
        *extra,
    ]


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("teachers")
    return [
        make_phase(folder / f"t{k}", seed=k, labels=SCENES) for k in range(2)
    ]


def results_of(folder, split="test"):
    results = json.loads((folder / f"{split}_results.json").read_text())
    results.pop("checkpoint", None)
    return results, (folder / f"{split}_predictions.csv").read_text()


def test_ensemble_evaluates_every_clip_once_written(
    tiny_demo, tmp_path, teachers
):
    folders = f"--teacher_folders=[{teachers[0]}, {teachers[1]}]"
    outcome = {}
    for processes in (1, 2):
        out = tmp_path / f"p{processes}"
        run_script(
            phase_command(
                "ensemble.yaml",
                tiny_demo,
                out,
                processes,
                "--sample_rate=8000",
                folders,
            )
        )
        outcome[processes] = results_of(out)
        log = (out / "train_log.txt").read_text()
        assert log.count("split: test") == 1  # written by one process
    assert outcome[2] == outcome[1]
    n_test = len(
        (tmp_path / "p1" / "manifests" / "test.csv").read_text().split()
    )
    assert outcome[2][0]["n_clips"] == n_test - 1  # every clip, header aside


def test_soft_label_cache_is_the_same_with_two_processes(
    tiny_demo, tmp_path, teachers
):
    caches = {}
    for processes in (1, 2):
        out = tmp_path / f"p{processes}"
        result = run_script(
            phase_command(
                "distill.yaml",
                tiny_demo,
                out,
                processes,
                *SMALL_MODEL,
                "--number_of_epochs=1",
                "--init_from=null",
                f"--teacher_folders=[{teachers[0]}, {teachers[1]}]",
            )
        )
        assert "Soft labels:" in result.stdout  # built by this run
        caches[processes] = torch.load(
            out / "save" / "soft_labels.pt", weights_only=False
        )
        assert (out / "test_results.json").is_file()
        assert len(list((out / "save").glob("CKPT+*"))) == 1
    assert caches[2]["ids"] == caches[1]["ids"]
    assert torch.equal(caches[2]["logits"], caches[1]["logits"])
