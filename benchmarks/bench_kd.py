#!/usr/bin/env python3
"""Where a training run's time goes: loader, steps, soft labels, startup.

Measures, side by side in one process and on the same batches (variants
interleaved step by step, in rotating order, so that machine noise hits
them alike), for one configuration of the DCASE2019 recipe:

- ``loader_over_step_throughput``: clips/s the training loader delivers
  (the recipe's own datasets, its phase's ``dataio_prep``, through the Brain's
  ``make_dataloader`` at the preset's worker count) over clips/s the
  Brain's training step consumes on batches already loaded;
- ``crop_read_over_whole_read``: reading a training crop's frames alone
  (``audio.load_crop``) over reading the whole file and cropping it, per
  clip of the training set;
- ``cached_kd_over_baseline_step``: a distillation step with cached soft
  labels over a baseline step (same student, batch and crop; center loss in
  both, mixup off in both);
- ``online_kd_over_cached_kd_step``: online teachers (baseline and the
  specialists, on the clip joined with a partner clip) over cached;
- ``brain_over_bare_step``: ``SceneClassificationBrain.fit_batch`` over a
  bare PyTorch loop (forward, CE + center loss, backward, both optimisers)
  on the same model and batches, the two alone in their group;
- ``student_over_ensemble_inference``: one student over the ensemble of
  baseline and specialists, per clip, on full evaluation clips, both
  PyTorch fp32 at every core; beside it (``--only inference``) the
  student in PyTorch fp32, ONNX Runtime fp32 and int8 (the library's
  export), each at one thread and at every core: milliseconds per second
  of audio, clips per second and the time over PyTorch fp32, and
  ``int8_over_pytorch_fp32_1_thread``;
- ``cache_build_over_epoch``: building the soft-label cache over one
  baseline epoch (``Brain.fit``, loader included);
- ``phase_startup_seconds``: from spawning ``train.py hparams/baseline.yaml``
  (with the overrides the pipeline gives it, data already prepared) to the
  start of its first training step. The child runs ``train.py`` unchanged
  through ``runpy`` after wrapping ``SceneClassificationBrain.fit`` and
  ``fit_batch``: the first ``fit_batch`` call prints wall-clock marks and
  ends the process, so no training is paid for. Nothing is inferred from
  logs (SpeechBrain logs nothing at the first step) or from a ``--debug``
  run minus its steps (that subtraction carries the noise of the steps).
  Beside it, ``startup_import_floor_s``: a bare interpreter importing
  SpeechBrain and ``torch._dynamo`` (which the first ``torch.optim``
  optimiser imports), the part of start-up no phase can avoid;
- fp32, fp16 and bf16 (``--precision``) step times of every model family.

Peak memory of every variant (the highest of its calls, each measured from
a reset): ``torch.cuda.max_memory_allocated`` on a GPU; on the CPU the
process's peak resident size (``ru_maxrss``, reset before each call through
``/proc/self/clear_refs`` where Linux allows it) and, for the loader, the
peak of ``tracemalloc`` (Python and NumPy buffers, where the audio is read)
over one epoch read in the main process.

Teachers are untrained (timing only). Figures are medians over repeats.

    python benchmarks/bench_kd.py [--json PATH] [--device cpu|cuda]
        [--config demo|paper] [--clips_per_scene N] [--repeats R]
        [--work FOLDER] [--only NAME ...] [--num_workers N|auto]

One script (about 1,300 lines) so that every ratio is measured side by side
in one process on one machine; each measurement is its own function.
"""

import argparse
import copy
import functools
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import tracemalloc
from pathlib import Path

import speechbrain as sb
import torch
import torch.nn.functional as F
from speechbrain.dataio.batch import PaddedBatch

from speechbrain_kd.hparams_preview import preview_hparams, written_settings
from speechbrain_kd.phase import dataio_prep

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "DCASE2019"
HPARAMS = RECIPE / "hparams"
MIB = 2**20

# The demo set's format for each preset (the preset gives the rest).
DATA = {
    "demo": {"seconds": 3.0, "channels": 2, "clips_per_scene": 16},
    "paper": {"seconds": 10.0, "channels": 2, "clips_per_scene": 8},
}
MEASUREMENTS = ("cache", "steps", "loader", "inference", "precision", "startup")
RATIO_KEYS = (
    "loader_over_step_throughput",
    "crop_read_over_whole_read",
    "cached_kd_over_baseline_step",
    "online_kd_over_cached_kd_step",
    "brain_over_bare_step",
    "student_over_ensemble_inference",
    "int8_over_pytorch_fp32_1_thread",
    "cache_build_over_epoch",
    "phase_startup_seconds",
)
PRECISIONS = ("fp32", "fp16", "bf16")

# The child that times a phase's start-up: train.py runs unchanged, and the
# first training step prints the marks and ends the process.
STARTUP_WRAPPER = r"""
import json, os, runpy, sys, threading, time
marks = {"interpreter": time.time()}
import speechbrain_kd.brain as brain
marks["imports"] = time.time()
cls = brain.SceneClassificationBrain
fit = cls.fit
def timed_fit(self, *args, **kwargs):
    marks["fit"] = time.time()
    return fit(self, *args, **kwargs)
def first_step(self, batch):
    marks["first_step"] = time.time()
    print("BENCH_MARKS " + json.dumps(marks), flush=True)
    for thread in threading.enumerate():  # env.log, so that no pip outlives
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    os._exit(0)
cls.fit, cls.fit_batch = timed_fit, first_step
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[0])))
runpy.run_path(sys.argv[0], run_name="__main__")
raise SystemExit("train.py ended without a training step")
"""


def _recipe(name):
    """A module of the recipe folder (``train``, ``pipeline``, ...)."""
    import importlib

    if str(RECIPE) not in sys.path:
        sys.path.insert(0, str(RECIPE))
    return importlib.import_module(name)


def bench_config(
    preset="demo",
    work=None,
    clips_per_scene=None,
    seconds=None,
    scenes=None,
    overrides=None,
    models=None,
    specialists=2,
):
    """The settings of one benchmark: a preset as the pipeline applies it.

    The baseline phase's settings are the ones ``pipeline.py --preset``
    passes to ``train.py hparams/baseline.yaml`` (preset, then
    ``overrides``), read back from the YAML; the demo set's format is
    :data:`DATA`'s for the preset, at the phase's sample rate.

    Arguments
    ---------
    preset : str
        ``demo`` or ``paper``.
    work : str or pathlib.Path, optional
        Folder for the data and every output (reused: an identical demo set
        and prepared manifests are not made again); default: a new
        temporary folder.
    clips_per_scene, seconds : optional
        The demo set's size (default: :data:`DATA`).
    scenes : list of str, optional
        Only these scenes (a smaller set for tests).
    overrides : dict, optional
        Settings of the phase (``{"batch_size": 4}``), as on the pipeline's
        command line.
    models : dict, optional
        ``{family: options}`` updating the preset's ``models`` section.
    specialists : int
        How many specialists the ensemble holds besides the baseline.

    Returns
    -------
    dict
        Plain values (JSON).

    Example
    -------
    >>> config = bench_config("demo", getfixture("tmpdir"))
    >>> [config["settings"][k] for k in ("sample_rate", "batch_size",
    ...  "crop_seconds", "num_workers")]
    [16000, 16, 2.0, 'auto']
    >>> config["family_options"]["raw_waveform_cnn"]["final_channels"]
    32
    >>> bench_config("paper", getfixture("tmpdir"))["settings"]["crop_seconds"]
    5.0
    """
    pipeline = _recipe("pipeline")
    work = Path(work or tempfile.mkdtemp(prefix="bench_kd-")).absolute()
    data = dict(DATA[preset])
    for key, value in (
        ("clips_per_scene", clips_per_scene),
        ("seconds", seconds),
    ):
        if value is not None:
            data[key] = value
    data["scenes"] = list(scenes) if scenes else None
    args = argparse.Namespace(
        output_folder=str(work / "phases"),
        data_folder=str(work / "data"),
        preset=preset,
        student_model=None,
        student_model_options=None,
    )
    pipe = pipeline.Pipeline(args, dict(overrides or {}), [])
    for family, options in (models or {}).items():
        pipe.preset.setdefault("models", {}).setdefault(family, {})
        pipe.preset["models"][family].update(options)
    phase = pipe.phase_overrides(
        "baseline.yaml", "baseline", output_folder=str(work / "startup")
    )
    settings = preview_hparams(HPARAMS / "baseline.yaml", phase)
    from speechbrain_kd.models import known_families

    family_options = {
        family: dict(pipe.preset.get("models", {}).get(family, {}))
        for family in known_families()
    }
    family_options[settings["model"]] = dict(settings["model_options"] or {})
    keys = (
        "sample_rate",
        "n_channels",
        "crop_seconds",
        "batch_size",
        "eval_batch_size",
        "num_workers",
        "embedding_dim",
        "model",
        "attention_heads",
        "seed",
        "valid_ratio",
        "lr",
        "weight_decay",
        "center_loss_weight",
        "center_lr",
        "data_folder",
        "prepare_folder",
    )
    data["sample_rate"] = settings["sample_rate"]
    return {
        "preset": preset,
        "work": str(work),
        "data": data,
        "settings": {key: settings[key] for key in keys},
        "family_options": family_options,
        "specialists": int(specialists),
        "specialist_pooling": written_settings(HPARAMS / "specialist.yaml")[
            "pooling"
        ],
        "phase_overrides": phase,
    }


def _device_name(device):
    device = str(device)
    return "cuda:0" if device == "cuda" else device


def _sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def _max_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_max_rss():
    """Reset the process's peak resident size to its current size.

    Linux (4.0 and newer) does it on writing 5 to ``/proc/self/clear_refs``;
    then ``ru_maxrss`` is the peak since this call. False where it cannot.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


class _PeakMemory:
    """The peak memory of each call, for :func:`interleave`."""

    def __init__(self, device):
        self.cuda = str(device).startswith("cuda")
        self.kind = (
            "torch.cuda.max_memory_allocated"
            if self.cuda
            else "ru_maxrss since a reset (/proc/self/clear_refs)"
        )
        if not self.cuda and not _reset_max_rss():
            self.kind = "ru_maxrss of the process (never reset: a lower bound)"

    def start(self):
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            self.before = torch.cuda.memory_allocated() / MIB
        else:
            _reset_max_rss()
            self.before = _max_rss_mib()

    def stop(self, entry):
        if self.cuda:
            peak = torch.cuda.max_memory_allocated() / MIB
        else:
            peak = _max_rss_mib()
        entry["peak_mib"] = max(entry.get("peak_mib", 0.0), peak)
        extra = max(entry.get("added_mib", 0.0), peak - self.before)
        entry["added_mib"] = extra
        entry["memory"] = self.kind


def interleave(variants, items, repeats=1, device="cpu"):
    """Time every variant on every item, in turn, ``repeats`` times over.

    For each item, the variants run one after the other in an order that
    rotates with the item and the repeat, so that slow moments of the
    machine fall on all of them alike. One untimed call per variant comes
    first (warm-up); a variant that raises there is dropped and its error
    kept. Peak memory is tracked per call, reset before each:
    ``torch.cuda.max_memory_allocated`` on CUDA; on the CPU the process's
    peak resident size (``ru_maxrss``, reset through
    ``/proc/self/clear_refs`` where Linux allows it).

    Arguments
    ---------
    variants : dict of str -> callable
        ``fn(item)``.
    items : list
        What each call gets (batches, or ``None`` per epoch).
    repeats : int
        Passes over ``items``.
    device : str
        Where the variants run (CUDA calls are synchronised).

    Returns
    -------
    dict of str -> dict
        Per variant: ``seconds`` (one per timed call), ``peak_mib`` (the
        highest peak of a call), ``added_mib`` (the most a call added to
        what was in use before it) and ``memory`` (what was measured); or
        ``error``.

    Example
    -------
    >>> out = interleave({"a": lambda x: x, "b": lambda x: 1 / x}, [0, 1])
    >>> len(out["a"]["seconds"]), out["b"]["error"]
    (2, 'ZeroDivisionError: division by zero')
    >>> out = interleave({"a": lambda x: x}, [1, 2], repeats=3)
    >>> len(out["a"]["seconds"]), out["a"]["peak_mib"] > 0
    (6, True)
    """
    results = {}
    live = {}
    for name, fn in variants.items():
        try:
            fn(items[0])
            _sync(device)
            live[name] = fn
            results[name] = {"seconds": []}
        except Exception as error:  # reported, never fatal
            results[name] = {"error": f"{type(error).__name__}: {error}"}
    memory = _PeakMemory(device)
    names = list(live)
    for repeat in range(repeats):
        for index, item in enumerate(items):
            shift = (index + repeat) % max(len(names), 1)
            for name in names[shift:] + names[:shift]:
                memory.start()
                _sync(device)
                start = time.perf_counter()
                live[name](item)
                _sync(device)
                results[name]["seconds"].append(time.perf_counter() - start)
                memory.stop(results[name])
    return results


def _median(entry):
    return statistics.median(entry["seconds"])


def _ratio(results, top, bottom):
    if "error" in results.get(top, {}) or "error" in results.get(bottom, {}):
        return math.nan
    return _median(results[top]) / _median(results[bottom])


# --------------------------------------------------------------- set-up ---


def _build_student(config, family=None, pooling="avgmax", seed=0):
    from speechbrain_kd.losses import CenterLoss
    from speechbrain_kd.models import build_family

    s = config["settings"]
    family = family or s["model"]
    torch.manual_seed(seed)
    modules = build_family(
        family,
        config["family_options"][family],
        in_channels=s["n_channels"],
        n_classes=config["n_classes"],
        sample_rate=s["sample_rate"],
        embedding_dim=s["embedding_dim"],
        pooling=pooling,
        attention_heads=s["attention_heads"],
    )
    modules["center_loss"] = CenterLoss(
        config["n_classes"], s["embedding_dim"], s["center_loss_weight"]
    )
    return modules


def _write_teacher(folder, modules, config, labels):
    """A phase folder holding an untrained model (timing only)."""
    from speechbrain.utils.checkpoints import Checkpointer

    from speechbrain_kd.checkpoints import MODEL_SPEC_FILE
    from speechbrain_kd.models.spec import write_model_spec

    parts = {k: modules[k] for k in ("embedding_model", "classifier")}
    save = Path(folder) / "save"
    shutil.rmtree(save, ignore_errors=True)  # from another configuration
    rate = config["settings"]["sample_rate"]
    write_model_spec(save / MODEL_SPEC_FILE, *parts.values(), rate, labels)
    Checkpointer(save, parts).save_checkpoint(meta={"accuracy": 0.5})
    return str(folder)


def _batches(dataset, size, keys, seed):
    """The dataset's clips in a seeded order, collated ``size`` at a time.

    ``keys`` is a list of key lists: one list of batches per key list, all
    holding the same clips (read once, so the same random crops).
    """
    torch.manual_seed(seed)
    order = torch.randperm(len(dataset)).tolist()
    examples = [dataset[i] for i in order]
    starts = range(0, len(examples) - size + 1, size)
    return [
        [
            PaddedBatch(
                [{k: ex[k] for k in names} for ex in examples[i : i + size]]
            )
            for i in starts
        ]
        for names in keys
    ]


def _setup(config, device):
    """Demo data, manifests, the recipe's datasets, batches and teachers."""
    from speechbrain_kd.demo_data import generate_demo_dataset
    from speechbrain_kd.labels import encoder_labels
    from speechbrain_kd.teachers import TeacherEnsemble

    train = _recipe("train")
    s, data, work = config["settings"], config["data"], Path(config["work"])
    generate_demo_dataset(
        s["data_folder"],
        clips_per_scene=data["clips_per_scene"],
        seconds=data["seconds"],
        sample_rate=data["sample_rate"],
        channels=data["channels"],
        seed=0,
        scenes=data["scenes"],
    )
    _recipe("dcase2019_prepare").prepare_dcase2019(
        data_folder=s["data_folder"],
        save_folder=s["prepare_folder"],
        valid_ratio=s["valid_ratio"],
        seed=s["seed"],
    )
    hparams = {
        "prepare_folder": s["prepare_folder"],
        "save_folder": str(work / "save"),
        "sample_rate": s["sample_rate"],
        "n_channels": s["n_channels"],
        "crop_seconds": s["crop_seconds"],
        "phase": "baseline",
        "seed": s["seed"],
    }
    datasets, manifests = dataio_prep(hparams, train.TASK)
    kd_hparams = dict(
        hparams, phase="distill", soft_label_mode="online", multi_segment=True
    )
    kd_datasets, _ = dataio_prep(kd_hparams, train.TASK)
    labels = encoder_labels(hparams["label_encoder"])
    config["n_classes"] = len(labels)
    slim = ["id", "sig", "label_encoded", "partner_id"]
    kd_batches, batches = _batches(
        kd_datasets["train"],
        s["batch_size"],
        [[*slim, "teacher_sig"], slim],
        s["seed"],
    )
    if not batches:
        raise ValueError(
            f"{len(kd_datasets['train'])} training clips make no batch of "
            f"{s['batch_size']}: raise --clips_per_scene"
        )
    # The baseline and the specialists (attention pooling), untrained.
    poolings = ["avgmax"] + [config["specialist_pooling"]] * config[
        "specialists"
    ]
    teachers = [
        _write_teacher(
            work / "teachers" / f"teacher{k}",
            _build_student(config, pooling=pooling, seed=k),
            config,
            labels,
        )
        for k, pooling in enumerate(poolings)
    ]
    ensemble = TeacherEnsemble.from_teacher_folders(
        teachers, labels=labels, device=device
    )
    size = min(s["eval_batch_size"], len(datasets["valid"]))
    (eval_batches,) = _batches(datasets["valid"], size, [["sig"]], s["seed"])
    return {
        "datasets": datasets,
        "manifests": manifests,
        "labels": labels,
        "label_encoder": hparams["label_encoder"],
        "kd_batches": kd_batches,
        "batches": batches,
        "eval_batches": eval_batches,
        "ensemble": ensemble,
        "cache": None,
    }


def _brain(config, modules, device, soft_labels=None, precision="fp32"):
    """The recipe's Brain (the student's when ``soft_labels`` is given)."""
    from speechbrain_kd.brain import DistillationBrain, SceneClassificationBrain

    s = config["settings"]
    hparams = {
        "mixup_alpha": 0.0,
        "center_opt_class": functools.partial(
            torch.optim.SGD, lr=s["center_lr"]
        ),
    }
    brain_class = SceneClassificationBrain
    if soft_labels is not None:
        from speechbrain_kd.losses import build_kd_loss

        hparams["kd_loss"] = build_kd_loss("published")
        hparams["soft_labels"] = soft_labels
        brain_class = DistillationBrain
    brain = brain_class(
        modules=modules,
        opt_class=functools.partial(
            torch.optim.Adam,
            lr=s["lr"],
            weight_decay=s["weight_decay"],
            amsgrad=True,
        ),
        hparams=hparams,
        run_opts={
            "device": _device_name(device),
            "precision": precision,
            "noprogressbar": True,
        },
    )
    brain.on_fit_start()
    brain.modules.train()
    return brain


def _bare_step(modules, config, device, autocast_dtype=None):
    """The same training step written as a plain PyTorch loop."""
    s = config["settings"]
    for module in modules.values():
        module.to(device).train()
    emb, clf, center = (
        modules[k] for k in ("embedding_model", "classifier", "center_loss")
    )
    net = [*emb.parameters(), *clf.parameters()]
    opt = torch.optim.Adam(
        net, lr=s["lr"], weight_decay=s["weight_decay"], amsgrad=True
    )
    center_opt = torch.optim.SGD(center.parameters(), lr=s["center_lr"])
    device_type = torch.device(device).type

    def step(batch):
        batch = batch.to(device)
        wavs, lengths = batch.sig
        targets = batch.label_encoded.data.view(-1)
        with torch.autocast(
            device_type,
            dtype=autocast_dtype,
            enabled=autocast_dtype is not None,
        ):
            embeddings = emb(wavs, lengths)
            logits = clf(embeddings)
            loss = F.cross_entropy(logits, targets) + center(
                embeddings, targets
            )
        loss.backward()
        opt.step()
        center_opt.step()
        opt.zero_grad(set_to_none=True)
        center_opt.zero_grad(set_to_none=True)
        return loss.detach()

    return step


def _cache(config, bench, device):
    """Build the soft-label cache of the ensemble (again) and return it."""
    from speechbrain_kd.soft_labels import SoftLabelCache

    s = config["settings"]
    path = Path(config["work"]) / "cache" / "soft_labels.pt"
    path.unlink(missing_ok=True)
    bench["cache"] = SoftLabelCache.build_or_load(
        path=path,
        ensemble=bench["ensemble"],
        manifest_csv=bench["manifests"]["train"],
        sample_rate=s["sample_rate"],
        channels=s["n_channels"],
        multi_segment=True,
        device=_device_name(device),
    )
    return bench["cache"]


def _train_loader_kwargs(config):
    s = config["settings"]
    return {
        "batch_size": s["batch_size"],
        "shuffle": True,
        "drop_last": True,
        "num_workers": s["num_workers"],
    }


def _measure_cache(config, bench, device, repeats):
    """Cache build versus one baseline epoch (``Brain.fit``, loader in)."""
    from speechbrain.utils.epoch_loop import EpochCounter

    brain = _brain(config, _build_student(config), device)
    train = bench["datasets"]["train"]

    def epoch(_):
        brain.fit(
            EpochCounter(1),
            train,
            train_loader_kwargs=_train_loader_kwargs(config),
            progressbar=False,
        )

    out = interleave(
        {
            "cache_build": lambda _: _cache(config, bench, device),
            "epoch": epoch,
        },
        [None],
        repeats,
        device,
    )
    return (
        {"cache_build_over_epoch": _ratio(out, "cache_build", "epoch")},
        {
            "cache_build_seconds": _median(out["cache_build"]),
            "baseline_epoch_seconds": _median(out["epoch"]),
            "training_clips": len(train),
        },
        out,
    )


def _measure_steps(config, bench, device, repeats):
    """Training steps, in two interleaved groups on the same batches.

    The Brain against the bare loop (alone, so that the heavy online step
    does not stand between them), then the baseline Brain against cached
    and online distillation.
    """
    from speechbrain_kd.soft_labels import OnlineSoftLabels

    if bench["cache"] is None:
        _cache(config, bench, device)
    student = _build_student(config)
    bare = _bare_step(copy.deepcopy(student), config, device)
    brain = _brain(config, copy.deepcopy(student), device)
    out = interleave(
        {"bare": bare, "brain": brain.fit_batch},
        bench["batches"],
        repeats,
        device,
    )
    brains = {
        "baseline": brain,
        "cached_kd": _brain(
            config, copy.deepcopy(student), device, soft_labels=bench["cache"]
        ),
        "online_kd": _brain(
            config,
            copy.deepcopy(student),
            device,
            soft_labels=OnlineSoftLabels(bench["ensemble"]),
        ),
    }
    # Online teachers need the teachers' view (teacher_sig): the other
    # variants get batches without it, so that nothing else differs.
    pairs = list(zip(bench["batches"], bench["kd_batches"], strict=True))
    out.update(
        interleave(
            {
                name: functools.partial(
                    lambda brain, view, pair: brain.fit_batch(pair[view]),
                    brain,
                    int(name == "online_kd"),
                )
                for name, brain in brains.items()
            },
            pairs,
            repeats,
            device,
        )
    )
    clips = config["settings"]["batch_size"]
    figures = {
        f"{name}_step_ms": 1000 * _median(entry)
        for name, entry in out.items()
        if "error" not in entry
    }
    figures["baseline_step_clips_per_s"] = clips / _median(out["baseline"])
    ratios = {
        "cached_kd_over_baseline_step": _ratio(out, "cached_kd", "baseline"),
        "online_kd_over_cached_kd_step": _ratio(out, "online_kd", "cached_kd"),
        "brain_over_bare_step": _ratio(out, "brain", "bare"),
    }
    return ratios, figures, out


def _loader_epoch(loader):
    clips = 0
    for batch in loader:
        clips += len(batch.id)
    return clips


def _measure_loader(config, bench, device, repeats):
    """Loader clips/s over training-step clips/s, epoch against epoch."""
    brain = _brain(config, _build_student(config), device)
    train = bench["datasets"]["train"]
    kwargs = _train_loader_kwargs(config)
    loader = brain.make_dataloader(train, sb.Stage.TRAIN, **kwargs)
    batches = bench["batches"]

    def steps(_):
        for batch in batches:
            brain.fit_batch(batch)

    out = interleave(
        {"loader": lambda _: _loader_epoch(loader), "steps": steps},
        [None],
        repeats,
        device,
    )
    clips = config["settings"]["batch_size"]
    loader_rate = clips * len(loader) / _median(out["loader"])
    step_rate = clips * len(batches) / _median(out["steps"])
    # Python and NumPy buffers of one epoch read in this process (workers'
    # allocations are not seen by tracemalloc).
    tracemalloc.start()
    _loader_epoch(
        brain.make_dataloader(
            train, sb.Stage.TRAIN, **dict(kwargs, num_workers=0)
        )
    )
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    figures = {
        "loader_clips_per_s": loader_rate,
        "step_clips_per_s": step_rate,
        "loader_num_workers": loader.num_workers,  # "auto" resolved
        "loader_tracemalloc_peak_mib": peak / MIB,
    }
    reads = _measure_crop_read(config, bench, repeats)
    out.update(reads)
    return (
        {
            "loader_over_step_throughput": loader_rate / step_rate,
            "crop_read_over_whole_read": _ratio(reads, "crop_read", "whole"),
        },
        figures,
        out,
    )


def _measure_crop_read(config, bench, repeats):
    """A training crop read alone against the whole file read and cropped."""
    from speechbrain_kd.audio import crop, load_audio, load_crop

    s = config["settings"]
    rate, channels = s["sample_rate"], s["n_channels"]
    n_samples = int(round(s["crop_seconds"] * rate))
    paths = [row["wav"] for row in bench["datasets"]["train"].data.values()]
    return interleave(
        {
            "crop_read": lambda path: load_crop(
                path, rate, channels, n_samples
            ),
            "whole": lambda path: crop(
                load_audio(path, rate, channels), n_samples
            ),
        },
        paths,
        repeats,
    )


def _inference_variants(config, bench, device):
    """The student in PyTorch, ONNX Runtime fp32 and int8, and the ensemble.

    Each at one thread and at every core (``torch.set_num_threads`` for
    PyTorch around each call, one ONNX Runtime session per thread count).
    The ONNX files come from the library's own export
    (:func:`speechbrain_kd.onnx_model.to_onnx`, ``quantize_int8``
    calibrated on training clips); without onnxruntime those variants
    report the error.
    """
    from speechbrain_kd.dataio import available_cores
    from speechbrain_kd.models.spec import module_spec

    student = _build_student(config)
    emb, clf = student["embedding_model"], student["classifier"]
    emb.to(device).eval()
    clf.to(device).eval()
    ensemble = bench["ensemble"]
    cores = available_cores()
    threads = {"1 thread": 1, f"{cores} threads": cores}
    variants = {}

    def with_threads(fn, n):
        def run(batch):
            before = torch.get_num_threads()
            torch.set_num_threads(n)
            try:
                return fn(batch)
            finally:
                torch.set_num_threads(before)

        return run

    @torch.no_grad()
    def run_student(batch):
        return clf(emb(batch.sig.data.to(device)))

    @torch.no_grad()
    def run_ensemble(batch):
        batch = batch.to(device)
        return ensemble(*batch.sig)

    for label, n in threads.items():
        variants[f"pytorch fp32, {label}"] = with_threads(run_student, n)
    ensemble_variant = (
        f"ensemble fp32, {cores} threads",
        with_threads(run_ensemble, cores),
    )
    if device != "cpu":  # ONNX Runtime runs on the CPU here
        return variants, ensemble_variant
    try:
        from speechbrain_kd.onnx_model import (
            OnnxModel,
            quantize_int8,
            to_onnx,
        )

        folder = Path(config["work"]) / "inference"
        folder.mkdir(parents=True, exist_ok=True)
        s = config["settings"]
        spec = {
            "embedding_model": module_spec(emb),
            "sample_rate": s["sample_rate"],
            "labels": list(bench["labels"]),
        }
        fp32 = to_onnx(emb, clf, spec, folder / "student.onnx")
        clips = [
            wav[: int(length * len(wav))].numpy()
            for batch in bench["batches"][:4]
            for wav, length in zip(*batch.sig, strict=True)
        ]
        int8 = quantize_int8(fp32, folder / "student.int8.onnx", clips)
        for name, path in (("onnxruntime fp32", fp32), ("int8", int8)):
            for label, n in threads.items():
                model = OnnxModel(path, threads=n)
                variants[f"{name}, {label}"] = lambda batch, model=model: (
                    model.posteriors(batch.sig.data.numpy())
                )
    except Exception as error:  # reported, never fatal
        variants["onnxruntime"] = _raises(error)
    return variants, ensemble_variant


def _raises(error):
    def run(batch):
        raise error

    return run


def _measure_inference(config, bench, device, repeats):
    """Inference speed of the student's formats, and the ensemble's.

    Per variant of :func:`_inference_variants`, on the evaluation batches
    (full clips): milliseconds per second of audio, clips per second and
    the time over PyTorch fp32 at the same thread count.
    """
    variants, (ensemble_name, run_ensemble) = _inference_variants(
        config, bench, device
    )
    variants[ensemble_name] = run_ensemble
    out = interleave(variants, bench["eval_batches"], repeats, device)
    batches = bench["eval_batches"]
    clips = sum(len(b.sig.data) for b in batches) * repeats
    audio = (
        sum(float(b.sig.lengths.sum()) * b.sig.data.shape[1] for b in batches)
        * repeats
        / config["settings"]["sample_rate"]
    )
    table = {}
    for name, entry in out.items():
        if "error" in entry:
            table[name] = {"error": entry["error"]}
            continue
        total = sum(entry["seconds"])
        table[name] = {
            "ms_per_audio_second": 1000 * total / audio,
            "clips_per_second": clips / total,
        }
    for name, row in table.items():
        reference = "pytorch fp32, " + name.split(", ")[-1]
        if "error" not in row and "error" not in table.get(reference, {}):
            if reference in table:
                row["over_pytorch_fp32"] = (
                    row["ms_per_audio_second"]
                    / table[reference]["ms_per_audio_second"]
                )
    bench["inference_table"] = table
    student = table["pytorch fp32, 1 thread"]["ms_per_audio_second"]
    # Both at every core.
    same = "pytorch fp32, " + ensemble_name.split(", ")[-1]
    ratios = {
        "student_over_ensemble_inference": _ratio(out, same, ensemble_name)
    }
    int8 = table.get("int8, 1 thread", {})
    if "over_pytorch_fp32" in int8:
        ratios["int8_over_pytorch_fp32_1_thread"] = int8["over_pytorch_fp32"]
    return (
        ratios,
        {"student_ms_per_audio_second_1_thread": student},
        out,
    )


def _measure_precision(config, bench, device, repeats):
    """fp32, fp16 and bf16 training steps of every model family."""
    from speechbrain_kd.models import known_families

    batches = bench["batches"][:4]
    report = {}
    for family in known_families():
        student = _build_student(config, family=family)
        variants, refused = {}, {}
        for precision in PRECISIONS:
            try:
                brain = _brain(
                    config, copy.deepcopy(student), device, precision=precision
                )
            except Exception as error:  # SpeechBrain refuses fp16 on a CPU
                refused[precision] = f"{type(error).__name__}: {error}"
                continue
            variants[precision] = brain.fit_batch
        for precision in refused:
            # What torch itself does, without SpeechBrain's refusal.
            dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[precision]
            variants[f"{precision}_torch_autocast"] = _bare_step(
                copy.deepcopy(student), config, device, autocast_dtype=dtype
            )
        out = interleave(variants, batches, repeats, device)
        base = out["fp32"]
        base = _median(base) if "error" not in base else math.nan
        for entry in out.values():
            if "error" not in entry:
                entry["step_ms"] = 1000 * _median(entry)
                entry["over_fp32"] = _median(entry) / base
                del entry["seconds"]
        for precision, error in refused.items():
            out[precision] = {"refused_by_speechbrain": error}
        report[family] = out
    return report


def _measure_startup(config, bench, device, repeats):
    """Seconds from spawning ``train.py`` to its first training step."""
    runs = max(1, min(repeats, 3))
    work = Path(config["work"]) / "startup"
    marks = []
    for run in range(runs):
        overrides = dict(
            config["phase_overrides"], output_folder=str(work / f"run{run}")
        )
        command = [
            sys.executable,
            "-c",
            STARTUP_WRAPPER,
            str(RECIPE / "train.py"),
            "hparams/baseline.yaml",
            *(f"--{k}={json.dumps(v)}" for k, v in overrides.items()),
            f"--device={_device_name(device)}",
        ]
        spawned = time.time()
        result = subprocess.run(
            command, cwd=RECIPE, capture_output=True, text=True
        )
        line = next(
            (
                text
                for text in result.stdout.splitlines()
                if text.startswith("BENCH_MARKS ")
            ),
            None,
        )
        if line is None:
            raise RuntimeError(
                f"train.py gave no first step ({result.returncode}):\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        found = json.loads(line.split(" ", 1)[1])
        marks.append({k: v - spawned for k, v in found.items()})
        # What no phase can avoid: the interpreter, torch and SpeechBrain,
        # and torch._dynamo (imported by the first torch.optim optimizer).
        # The child prints the time itself: its exit is not start-up.
        spawned = time.time()
        floor = subprocess.run(
            [
                sys.executable,
                "-c",
                "import speechbrain, time, torch._dynamo; print(time.time())",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        marks[-1]["import_floor"] = float(floor.stdout.split()[-1]) - spawned
    figures = {
        f"startup_{k}_s": statistics.median(m[k] for m in marks)
        for k in marks[0]
    }
    seconds = figures["startup_first_step_s"]
    return {"phase_startup_seconds": seconds}, figures, {}


def run_benchmark(config, device="cpu", repeats=3, only=None):
    """Run the measurements of :data:`MEASUREMENTS` (or ``only`` those).

    Arguments
    ---------
    config : dict
        From :func:`bench_config`.
    device : str
        ``cpu`` or ``cuda``.
    repeats : int
        Interleaved passes over the batches (epochs for the loader and the
        cache); phase start-up runs ``min(repeats, 3)`` times.
    only : list of str, optional
        Names of :data:`MEASUREMENTS` to run.

    Returns
    -------
    dict
        ``ratios`` (the keys of :data:`RATIO_KEYS` that were measured),
        ``figures`` (absolute numbers), ``memory`` (per variant),
        ``precision`` (per family), ``targets``, ``config``,
        ``environment`` and ``errors`` (the traceback of each measurement
        that failed; the others still run).

    Example
    -------
    >>> config = bench_config(
    ...     "demo", getfixture("tmpdir"), clips_per_scene=8, seconds=1.0,
    ...     scenes=["park", "metro"], overrides={"batch_size": 4,
    ...     "crop_seconds": 0.5, "sample_rate": 8000})
    >>> out = run_benchmark(config, repeats=1, only=["inference"])
    >>> list(out["ratios"]), out["errors"]
    (['student_over_ensemble_inference', 'int8_over_pytorch_fp32_1_thread'], {})
    >>> [name.split(",")[0] for name in out["inference"]][::2]
    ['pytorch fp32', 'onnxruntime fp32', 'int8', 'ensemble fp32']
    """
    only = list(only or MEASUREMENTS)
    unknown = sorted(set(only) - set(MEASUREMENTS))
    if unknown:
        raise ValueError(f"unknown measurement(s) {unknown}: {MEASUREMENTS}")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda but torch sees no CUDA device")
    config = copy.deepcopy(config)
    began = time.perf_counter()
    bench = _setup(config, _device_name(device))
    dev = _device_name(device)
    ratios, figures, memory, precision, errors = {}, {}, {}, {}, {}

    def keep(name, found):
        part_ratios, part_figures, out = found
        ratios.update(part_ratios)
        figures.update(part_figures)
        for variant, entry in out.items():
            memory[f"{name}/{variant}"] = {
                k: v for k, v in entry.items() if k != "seconds"
            }

    measures = {
        "cache": _measure_cache,
        "steps": _measure_steps,
        "loader": _measure_loader,
        "inference": _measure_inference,
        "startup": _measure_startup,
    }
    for name in MEASUREMENTS:
        if name not in only:
            continue
        # One failing measurement (a GPU quirk, say) must not cost the rest.
        try:
            if name == "precision":
                precision = _measure_precision(config, bench, dev, repeats)
            else:
                keep(name, measures[name](config, bench, dev, repeats))
        except Exception:
            errors[name] = traceback.format_exc(limit=-4)
    figures["benchmark_seconds"] = time.perf_counter() - began
    k = config["specialists"]
    return {
        "config": config,
        "environment": {
            "device": dev,
            "device_name": torch.cuda.get_device_name()
            if dev.startswith("cuda")
            else "cpu",
            "torch": torch.__version__,
            "speechbrain": sb.__version__,
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
        },
        "ratios": {key: ratios[key] for key in RATIO_KEYS if key in ratios},
        "targets": _targets(ratios, k),
        "figures": figures,
        "memory": memory,
        "precision": precision,
        "inference": bench.get("inference_table", {}),
        "errors": errors,
    }


def _targets(ratios, specialists):
    goal = 1 / (specialists + 1)
    rules = {
        "loader_over_step_throughput": (">= 3", lambda r: r >= 3),
        "cached_kd_over_baseline_step": ("<= 1.10", lambda r: r <= 1.10),
        "brain_over_bare_step": ("<= 1.05", lambda r: r <= 1.05),
        "student_over_ensemble_inference": (
            f"~ 1/{specialists + 1} = {goal:.3f} (within 25 %)",
            lambda r: 0.75 * goal <= r <= 1.25 * goal,
        ),
        "phase_startup_seconds": ("<= 5", lambda r: r <= 5),
        # int8 at least 1.5 times as fast as PyTorch fp32 at one thread.
        "int8_over_pytorch_fp32_1_thread": ("<= 0.667", lambda r: r <= 2 / 3),
    }
    return {
        key: {"target": text, "met": bool(rule(ratios[key]))}
        for key, (text, rule) in rules.items()
        if key in ratios
    }


def format_report(report):
    """The printed table: ratios with targets, absolute figures, memory.

    Arguments
    ---------
    report : dict
        From :func:`run_benchmark`.

    Returns
    -------
    str

    Example
    -------
    >>> print(format_report({"config": {"preset": "demo"},
    ...     "environment": {"device": "cpu"},
    ...     "ratios": {"brain_over_bare_step": 1.02},
    ...     "targets": {"brain_over_bare_step": {"target": "<= 1.05",
    ...                                          "met": True}},
    ...     "figures": {"bare_step_ms": 10.0}, "memory": {},
    ...     "precision": {}}))
    config demo on cpu
    ratio                                   value  target  met
    brain_over_bare_step                    1.020  <= 1.05  yes
    figures
      bare_step_ms                          10.000
    """
    env = report["environment"]
    lines = [f"config {report['config']['preset']} on {env['device']}"]
    lines.append(f"{'ratio':<38}  {'value':>5}  target  met")
    for key, value in report["ratios"].items():
        target = report["targets"].get(key)
        met = "" if target is None else ("yes" if target["met"] else "NO")
        text = "" if target is None else target["target"]
        lines.append(f"{key:<38} {value:6.3f}  {text}  {met}".rstrip())
    lines.append("figures")
    for key, value in report["figures"].items():
        lines.append(f"  {key:<36} {value:7.3f}")
    kinds = {e["memory"] for e in report["memory"].values() if "memory" in e}
    if kinds:
        lines.append(f"peak memory per call, MiB ({'; '.join(sorted(kinds))})")
    for key, entry in report["memory"].items():
        if "peak_mib" in entry:
            lines.append(
                f"  {key:<36} peak {entry['peak_mib']:8.1f}  added "
                f"{entry['added_mib']:8.1f}"
            )
        else:
            lines.append(f"  {key:<36} {entry.get('error', '')}")
    for family, out in report["precision"].items():
        lines.append(f"precision {family}")
        for name, entry in out.items():
            if "step_ms" in entry:
                lines.append(
                    f"  {name:<22} {entry['step_ms']:9.1f} ms/step  "
                    f"x{entry['over_fp32']:.2f} of fp32  peak "
                    f"{entry['peak_mib']:.0f} MiB (added "
                    f"{entry['added_mib']:.0f})"
                )
            else:
                problem = next(iter(entry.values()))
                lines.append(f"  {name:<22} {str(problem)[:100]}")
    if report.get("inference"):
        lines.append(
            f"inference (per second of audio)  {'ms':>8}  {'clips/s':>8}"
            "  x PyTorch fp32"
        )
    for name, row in report.get("inference", {}).items():
        if "error" in row:
            lines.append(f"  {name:<31} {row['error'][:100]}")
            continue
        over = row.get("over_pytorch_fp32")
        lines.append(
            f"  {name:<31} {row['ms_per_audio_second']:8.3f}  "
            f"{row['clips_per_second']:8.1f}  "
            + ("" if over is None else f"{over:.2f}")
        )
    for name, text in report.get("errors", {}).items():
        lines.append(f"FAILED {name}:")
        lines.extend(f"  {line}" for line in text.strip().splitlines())
    return "\n".join(lines)


def main(argv=None):
    """Run the benchmark from the command line; print and write the report.

    Arguments
    ---------
    argv : list of str, optional
        Default: ``sys.argv[1:]``.

    Example
    -------
    >>> main(["--config", "tiny"])
    Traceback (most recent call last):
    ...
    SystemExit: 2
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--config", default="demo", choices=list(DATA))
    parser.add_argument("--clips_per_scene", type=int)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, help="data and outputs (reused)")
    parser.add_argument("--only", nargs="+", choices=MEASUREMENTS)
    parser.add_argument(
        "--num_workers", help="loader workers (default: the preset's)"
    )
    args = parser.parse_args(argv)
    overrides = {}
    if args.num_workers is not None:
        workers = args.num_workers
        overrides["num_workers"] = (
            int(workers) if workers.isdigit() else workers
        )
    config = bench_config(
        args.config, args.work, args.clips_per_scene, overrides=overrides
    )
    report = run_benchmark(config, args.device, args.repeats, args.only)
    print(format_report(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report


if __name__ == "__main__":
    main()
