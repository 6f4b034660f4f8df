"""A checkpoint is written whole or not at all (``AtomicCheckpointer``)."""

import os
import signal
import subprocess
import sys
import textwrap

import torch

from speechbrain_kd.checkpoints import AtomicCheckpointer


def test_a_killed_save_leaves_the_previous_checkpoint_to_resume(tmp_path):
    """SIGKILL between the meta file and the parameter files (where
    SpeechBrain's own Checkpointer leaves a checkpoint that recovery picks
    and fails on): recovery loads the earlier checkpoint and removes the
    unfinished folder."""
    script = textwrap.dedent(
        f"""
        import os, signal, torch
        from speechbrain_kd.checkpoints import AtomicCheckpointer
        model = torch.nn.Linear(1, 1)
        ckpt = AtomicCheckpointer({str(tmp_path)!r}, {{"model": model}})
        torch.nn.init.constant_(model.weight, 1.0)
        ckpt.save_checkpoint(name="first")
        torch.nn.init.constant_(model.weight, 2.0)
        def killed(obj, path):
            os.kill(os.getpid(), signal.SIGKILL)
        ckpt.add_recoverable("late", torch.nn.Linear(1, 1),
                             custom_save_hook=killed)
        ckpt.save_checkpoint(name="second")
        """
    )
    run = subprocess.run([sys.executable, "-c", script], check=False)
    assert run.returncode == -signal.SIGKILL
    assert (tmp_path / "CKPT+second" / "model.ckpt").exists()

    model, late = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
    ckpt = AtomicCheckpointer(tmp_path, {"model": model, "late": late})
    ckpt.allow_partial_load = True  # "first" predates "late"
    recovered = ckpt.recover_if_possible()
    assert recovered.path.name == "CKPT+first"
    assert model.weight.item() == 1.0
    assert not (tmp_path / "CKPT+second").exists()
    assert sorted(os.listdir(tmp_path)) == ["CKPT+first"]


def test_every_checkpoint_saved_is_listed_with_its_files(tmp_path):
    model = torch.nn.Linear(2, 1)
    ckpt = AtomicCheckpointer(tmp_path, {"model": model})
    for accuracy in (0.5, 0.7):
        ckpt.save_and_keep_only(
            meta={"accuracy": accuracy}, max_keys=["accuracy"]
        )
    (kept,) = ckpt.list_checkpoints()
    assert kept.meta["accuracy"] == 0.7
    assert set(kept.paramfiles) == {"model"}
    assert not list(tmp_path.glob("*/*.pending"))
