"""Export a trained phase as a folder SpeechBrain's own classes can load,
and as ONNX and int8 ONNX.

    python -m speechbrain_kd.export PHASE_OUTPUT_FOLDER EXPORT_FOLDER \
        [--format torch,onnx,int8] [--verify MANIFEST_CSV] \
        [--calibration MANIFEST_CSV] [--max_params N] [--max_macs N] \
        [--max_model_bytes N] [--overwrite] [--data SENTENCE]

``--format onnx`` adds ``model.onnx`` (waveform to posteriors) and ``int8``
``model.int8.onnx`` (see :mod:`speechbrain_kd.onnx_model`); ``--verify``
compares every format with the trained model on a manifest's clips and
fails, writing nothing, below the thresholds; ``export.json`` holds each
format's figures. The ``torch`` format (the default) is described below.

The folder holds ``hyperparams.yaml``, the weights of the phase's best
checkpoint (``embedding_model.ckpt``, ``classifier.ckpt``, plain state
dicts), ``label_encoder.txt`` and a model card ``README.md``, and loads with
the stock

    from speechbrain.inference.classifiers import EncoderClassifier
    model = EncoderClassifier.from_hparams(source=EXPORT_FOLDER, savedir=...)
    out_prob, score, index, label = model.classify_file("clip.wav")

with no code beyond an installed ``speechbrain_kd``. Audio at any rate and
channel count is resampled to the model's rate by SpeechBrain's
``AudioNormalizer`` (``mix: keep``, so a binaural model keeps both
channels) and the model adapts the channel count itself.

Safety: SpeechBrain's ``Pretrainer`` reads the weights with
``torch.load(path, map_location="cpu")`` (``torch_patched_state_dict_load``
in ``speechbrain/utils/checkpoints.py``), which is ``weights_only=True`` by
default since torch 2.6 unless ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` is set;
the label encoder is parsed with ``ast.literal_eval``. The
``hyperparams.yaml`` itself is code: HyperPyYAML's ``!new:``, ``!name:``,
``!apply:`` and ``!module:`` import and call what they name. Read a
downloaded one first, or list what it would call with
:func:`speechbrain_kd.audit.audit_hyperparams`. To share the folder:
``python -m speechbrain_kd.hub push EXPORT_FOLDER USER/REPO``.
"""

import argparse
import csv
import json
import logging
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from speechbrain_kd.checkpoints import (
    LABEL_ENCODER_FILE,
    MODEL_MODULES,
    MODEL_SPEC_FILE,
    find_best_checkpoint,
    load_state,
    read_phase_spec,
    save_folder_of,
)
from speechbrain_kd.complexity import check_limits, model_complexity
from speechbrain_kd.dataio import load_audio, read_manifest
from speechbrain_kd.model_card import model_card
from speechbrain_kd.models.spec import build_module
from speechbrain_kd.onnx_model import (
    OnnxModel,
    Posteriors,
    parameter_bytes,
    quantize_int8,
    require_onnx,
    to_onnx,
)

logger = logging.getLogger(__name__)

EXPORT_FILES = (
    "hyperparams.yaml",
    "embedding_model.ckpt",
    "classifier.ckpt",
    LABEL_ENCODER_FILE,
    "label_encoder.ckpt",
    "README.md",
)
# torch: the SpeechBrain folder; onnx: model.onnx, waveform to posteriors;
# int8: model.int8.onnx, statically quantized.
FORMATS = ("torch", "onnx", "int8")
ONNX_FORMATS = ("onnx", "int8")
FORMAT_FILES = {"onnx": "model.onnx", "int8": "model.int8.onnx"}
FORMAT_PRECISION = {"torch": "fp32", "onnx": "fp32", "int8": "int8"}
EXPORT_INFO_FILE = "export.json"
# fp32 formats must give PyTorch's posteriors within float tolerance.
FP32_ATOL = 1e-4
# int8 must keep PyTorch's top-1 label on this share of the --verify clips
# (measured on the demo students: see the README's "Export formats").
INT8_AGREEMENT = 0.97
# Calibration clips drawn from the training manifest for int8.
CALIBRATION_CLIPS = 100


def _yaml_module(key, spec):
    lines = [f"{key}: !new:{spec['class']}"]
    # JSON is YAML: numbers, strings, lists and dicts keep their types.
    lines += [f"    {k}: {json.dumps(v)}" for k, v in spec["config"].items()]
    return "\n".join(lines)


def hyperparams_yaml(spec):
    """The ``hyperparams.yaml`` of an exported model.

    Both modules are ``!new:<class>`` with the constructor arguments that
    ``model_spec.json`` recorded; the classifier is wrapped with a
    ``LogSoftmax`` because ``EncoderClassifier.classify_batch`` reads its
    output as log posteriors.

    Arguments
    ---------
    spec : dict
        The phase's ``model_spec.json``.

    Returns
    -------
    str

    Example
    -------
    >>> from speechbrain_kd.models import SceneClassifier, module_spec
    >>> clf = module_spec(SceneClassifier(4, 2))
    >>> text = hyperparams_yaml({"embedding_model": clf, "classifier": clf,
    ...                          "sample_rate": 8000, "labels": ["a", "b"]})
    >>> "mix: keep" in text and "sample_rate: 8000" in text
    True
    """
    return f"""\
# ############################################################################
# speechbrain-kd export ({spec.get("phase", "model")}): load with
#   speechbrain.inference.classifiers.EncoderClassifier.from_hparams(
#       source=<this folder or hub repo>, savedir=<cache folder>)
# Jung et al., IEEE Access 2020, DOI 10.1109/ACCESS.2020.3021711
# ############################################################################

sample_rate: {int(spec["sample_rate"])}

# Where a Pretrainer used on its own collects the files (from_hparams
# replaces it by its savedir).
pretrained_path: pretrained_model

# Resample any input to the model's rate; keep every channel (the model
# adapts the channel count itself, so a binaural model is not mixed to mono).
audio_normalizer: !new:speechbrain.dataio.preprocess.AudioNormalizer
    sample_rate: !ref <sample_rate>
    mix: keep

# The model computes its own features from the waveform.
compute_features: !new:speechbrain_kd.inference.PassThrough
mean_var_norm: !new:speechbrain_kd.inference.PassThrough

{_yaml_module("embedding_model", spec["embedding_model"])}

{_yaml_module("scene_classifier", spec["classifier"])}

# EncoderClassifier reads the classifier's output as log posteriors.
classifier: !new:torch.nn.Sequential
    - !ref <scene_classifier>
    - !new:torch.nn.LogSoftmax
        dim: -1

label_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder
# The label count, so that loading does not warn that it was never given.
label_count: !apply:speechbrain.dataio.encoder.CategoricalEncoder.expect_len
    - !ref <label_encoder>
    - {len(spec["labels"])}

modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>
    classifier: !ref <classifier>

# Each loadable is read as <source>/<name>.ckpt, wherever the folder lives
# (label_encoder.ckpt is label_encoder.txt under the name the Pretrainer
# looks for). The classifier weights go into the inner module.
pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    collect_in: !ref <pretrained_path>
    loadables:
        embedding_model: !ref <embedding_model>
        classifier: !ref <scene_classifier>
        label_encoder: !ref <label_encoder>
"""


def _read_results(phase_folder):
    path = Path(phase_folder) / "test_results.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error


def _check_labels(spec, labels_file):
    from speechbrain.dataio.encoder import CategoricalEncoder

    from speechbrain_kd.labels import encoder_labels

    if not labels_file.is_file():
        raise FileNotFoundError(f"{labels_file} is missing")
    encoder = CategoricalEncoder()
    encoder.load(labels_file)
    found = encoder_labels(encoder)
    if found != list(spec["labels"]):
        raise ValueError(
            f"{labels_file} holds labels {found} but {MODEL_SPEC_FILE} "
            f"says {spec['labels']}: the phase folder is inconsistent"
        )


def _check_loads_the_same(folder, modules, spec, seconds=3.0):
    """Load ``folder`` like a user would; compare with ``modules``."""
    rate = int(spec["sample_rate"])
    channels = int(spec["embedding_model"]["config"].get("in_channels", 1))
    wav = torch.randn(
        1, int(seconds * rate), channels, generator=torch.Generator()
    )
    with torch.no_grad():
        expected = torch.log_softmax(
            modules["classifier"](modules["embedding_model"](wav)), -1
        )
    with tempfile.TemporaryDirectory() as savedir:
        model = load_exported(folder, savedir=savedir)
        out_prob, _, _, _ = model.classify_batch(wav)
    if not torch.allclose(out_prob, expected, atol=1e-4, rtol=1e-4):
        diff = float((out_prob - expected).abs().max())
        raise RuntimeError(
            f"the export in {folder} does not reproduce the trained model "
            f"(largest log-posterior difference {diff:.3g})"
        )


def parse_formats(formats):
    """Check a list of export formats (``"torch,onnx,int8"`` or a list).

    Arguments
    ---------
    formats : str or list of str

    Returns
    -------
    list of str
        In the order of :data:`FORMATS`, each once.

    Example
    -------
    >>> parse_formats("int8, torch")
    ['torch', 'int8']
    >>> parse_formats("onnx,tflite")
    Traceback (most recent call last):
    ...
    ValueError: unknown export format(s) ['tflite']; known: torch, onnx, int8
    """
    if isinstance(formats, str):
        formats = formats.split(",")
    wanted = [str(name).strip() for name in formats if str(name).strip()]
    unknown = [name for name in wanted if name not in FORMATS]
    if unknown or not wanted:
        raise ValueError(
            f"unknown export format(s) {unknown or wanted}; known: "
            + ", ".join(FORMATS)
        )
    return [name for name in FORMATS if name in wanted]


def _phase_setting(phase_folder, key):
    """A top-level scalar of a phase's ``hyperparams.yaml`` (or None)."""
    path = Path(phase_folder) / "hyperparams.yaml"
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    found = re.search(rf"^{key}:[ \t]*([^#\n]*)", text, flags=re.MULTILINE)
    return found.group(1).strip() or None if found else None


def _check_phase_folder(phase_folder):
    """Refuse an ensemble folder, saying what to export instead."""
    phase_folder = Path(phase_folder)
    if not phase_folder.is_dir():
        raise FileNotFoundError(f"phase folder {phase_folder} does not exist")
    if _phase_setting(phase_folder, "phase") == "ensemble":
        parent = phase_folder.parent
        raise ValueError(
            f"{phase_folder} is the teacher ensemble, an average of several "
            "models with no weights of its own: export one model instead, "
            f"the student ({parent / 'student'}) or a teacher "
            f"({parent / 'baseline'}, {parent / 'specialists'}/<pair>)"
        )
    return read_phase_spec(phase_folder)


def read_clip_manifest(manifest_csv, what="--verify"):
    """The rows of a manifest of clips (``ID``, ``wav``, maybe ``scene``).

    Arguments
    ---------
    manifest_csv : str or pathlib.Path
    what : str
        The option that named the file, for the error.

    Returns
    -------
    list of dict

    Example
    -------
    >>> read_clip_manifest(getfixture("tmpdir") + "/none.csv")
    Traceback (most recent call last):
    ...
    FileNotFoundError: --verify ...none.csv does not exist
    """
    path = Path(manifest_csv)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ValueError(f"{what} {path} cannot be read: {error}") from error
    if not rows or not {"ID", "wav"} <= set(rows[0]):
        raise ValueError(
            f"{what} {path} is not a manifest of clips: it needs a header "
            "with ID and wav and at least one row"
        )
    return rows


def _calibration_rows(phase_folder, calibration, n_clips):
    """Clips of the training manifest (or ``calibration``) for int8."""
    if calibration is None:
        prepared = _phase_setting(phase_folder, "prepare_folder")
        if prepared is None or not (Path(prepared) / "train.csv").is_file():
            raise ValueError(
                "int8 needs calibration clips from the training data and "
                f"{phase_folder} names no training manifest: pass "
                "--calibration MANIFEST_CSV (e.g. <pipeline>/manifests/"
                "train.csv)"
            )
        calibration = Path(prepared) / "train.csv"
    rows = read_clip_manifest(calibration, "--calibration")
    # An even spread over the (label-sorted) manifest, the same every run.
    step = max(len(rows) / n_clips, 1.0)
    return [rows[int(i * step)] for i in range(min(n_clips, len(rows)))]


def _clips(rows, rate, channels):
    """Load manifest rows as ``[T, C]`` waveforms; refuse non-finite ones."""
    for row in rows:
        wav = load_audio(row["wav"], rate, channels)
        if not torch.isfinite(wav).all():
            raise ValueError(f"{row['wav']} holds NaN or infinite samples")
        yield row, wav


def _check_model_bytes(figures, max_model_bytes, counted=False):
    """Refuse the most compact exported format over ``max_model_bytes``."""
    if max_model_bytes is None:
        return
    name = min(figures, key=lambda f: figures[f]["parameter_bytes"])
    size = figures[name]["parameter_bytes"]
    if size > max_model_bytes:
        holds = "would hold at least" if counted else "holds"
        raise ValueError(
            f"max_model_bytes={max_model_bytes}: the {name} model {holds} "
            f"{size:,} bytes of parameters ({figures[name]['precision']}), "
            f"{size - max_model_bytes:,} over the limit; choose a smaller "
            "model" + ("" if name == "int8" else " or the int8 format")
        )


def compare_formats(net, folder, formats, rows, spec):
    """Each format against the trained PyTorch model on manifest clips.

    Arguments
    ---------
    net : speechbrain_kd.onnx_model.Posteriors
        The trained model (waveforms -> posteriors).
    folder : pathlib.Path
        An export folder holding the formats.
    formats : list of str
    rows : list of dict
        Manifest rows (``wav``; ``scene`` gives the accuracy).
    spec : dict
        The phase's ``model_spec.json``.

    Returns
    -------
    dict
        ``{"pytorch": {"accuracy"}, <format>: {"n_clips", "accuracy",
        "agreement", "max_abs_diff"}}`` (accuracy None without ``scene``).
    """
    rate = int(spec["sample_rate"])
    channels = int(spec["embedding_model"]["config"].get("in_channels", 1))
    labels = list(spec["labels"])
    runners = {}
    for name in formats:
        if name == "torch":
            model = load_exported(folder)

            def run(wav, model=model):
                with torch.no_grad():
                    return model.classify_batch(torch.from_numpy(wav))[0].exp()

            runners[name] = run
        else:
            runners[name] = OnnxModel(folder / FORMAT_FILES[name]).posteriors
    hits = {name: [] for name in ["pytorch", *formats]}
    agree = {name: [] for name in formats}
    diffs = dict.fromkeys(formats, 0.0)
    for row, wav in _clips(rows, rate, channels):
        with torch.no_grad():
            expected = net(wav[None])[0]
        truth = row.get("scene")
        hits["pytorch"].append(labels[int(expected.argmax())] == truth)
        for name, run in runners.items():
            got = torch.as_tensor(run(wav[None].numpy()))[0].float()
            diffs[name] = max(diffs[name], float((got - expected).abs().max()))
            agree[name].append(int(got.argmax()) == int(expected.argmax()))
            hits[name].append(labels[int(got.argmax())] == truth)
    scored = "scene" in rows[0]

    def accuracy(name):
        return sum(hits[name]) / len(rows) if scored else None

    report = {
        "pytorch": {"n_clips": len(rows), "accuracy": accuracy("pytorch")}
    }
    for name in formats:
        report[name] = {
            "n_clips": len(rows),
            "accuracy": accuracy(name),
            "agreement": sum(agree[name]) / len(rows),
            "max_abs_diff": diffs[name],
        }
    return report


def _check_verified(report, min_int8_agreement):
    """Raise when a format falls below its stated threshold."""
    failures = []
    for name, figures in report.items():
        if name == "pytorch":
            continue
        if name == "int8":
            if figures["agreement"] < min_int8_agreement:
                failures.append(
                    f"int8 agrees on top-1 with PyTorch for "
                    f"{100 * figures['agreement']:.1f} % of the clips, "
                    f"below {100 * min_int8_agreement:.1f} %"
                )
        elif figures["agreement"] < 1 or figures["max_abs_diff"] > FP32_ATOL:
            failures.append(
                f"{name} differs from PyTorch (top-1 agreement "
                f"{100 * figures['agreement']:.1f} %, largest posterior "
                f"difference {figures['max_abs_diff']:.2g} > {FP32_ATOL:g})"
            )
    if failures:
        raise RuntimeError(
            "verification failed, nothing written: " + "; ".join(failures)
        )


def export_model(
    phase_folder,
    export_folder,
    overwrite=False,
    check=True,
    data=None,
    formats=("torch",),
    verify=None,
    calibration=None,
    max_params=None,
    max_macs=None,
    max_model_bytes=None,
    min_int8_agreement=INT8_AGREEMENT,
    calibration_clips=CALIBRATION_CLIPS,
):
    """Turn the best checkpoint of a phase into a folder of loadable models.

    Every argument is checked before anything is written; the folder is
    built and verified beside its target, then renamed into place, so it
    appears whole or not at all.

    Arguments
    ---------
    phase_folder : str or pathlib.Path
        A phase's output folder (baseline, specialist or student).
    export_folder : str or pathlib.Path
        Created whole or not at all.
    overwrite : bool
        Replace an existing non-empty ``export_folder``.
    check : bool
        Check each format against the trained model on random waveforms
        (the torch folder through SpeechBrain's ``EncoderClassifier``).
    data : str, optional
        A sentence on the training data for the model card.
    formats : str or list of str
        Of :data:`FORMATS`: ``torch`` (a SpeechBrain folder), ``onnx``
        (``model.onnx``, waveform to posteriors) and ``int8``
        (``model.int8.onnx``, statically quantized).
    verify : str or pathlib.Path, optional
        A manifest (``ID``, ``wav``, ``scene``) on whose clips every format
        is compared with the trained PyTorch model; the export fails below
        the thresholds (fp32: same top-1 on every clip and posteriors
        within :data:`FP32_ATOL`; int8: ``min_int8_agreement``).
    calibration : str or pathlib.Path, optional
        The manifest int8 calibrates on; default: the phase's training
        manifest (``<prepare_folder>/train.csv``).
    max_params, max_macs : int, optional
        Limits on the exported model (see
        :func:`speechbrain_kd.complexity.check_limits`).
    max_model_bytes : int, optional
        Limit on the parameter bytes of the most compact format exported,
        at the precision it is stored in (DCASE: 128,000 at int8).
    min_int8_agreement : float
        Share of clips on which int8 must keep PyTorch's top-1 label.
    calibration_clips : int
        Clips drawn (evenly) from the calibration manifest.

    Returns
    -------
    pathlib.Path
        The folder; its ``export.json`` holds each format's figures.

    Example
    -------
    >>> from speechbrain.utils.checkpoints import Checkpointer
    >>> from speechbrain_kd.models import LogMelCNN, SceneClassifier
    >>> from speechbrain_kd.models.spec import write_model_spec
    >>> from speechbrain_kd.labels import load_or_create_label_encoder
    >>> phase = Path(getfixture("tmpdir")) / "phase"
    >>> emb = LogMelCNN(8000, n_mels=8, n_fft=256, conv_channels=[2],
    ...                 embedding_dim=2)
    >>> clf = SceneClassifier(2, 2)
    >>> write_model_spec(phase / "save/model_spec.json", emb, clf, 8000,
    ...                  ["bus", "park"])
    >>> _ = load_or_create_label_encoder(
    ...     phase / "save/label_encoder.txt", ["bus", "park"])
    >>> _ = Checkpointer(phase / "save", {"embedding_model": emb,
    ...     "classifier": clf}).save_checkpoint(meta={"accuracy": 0.5})
    >>> folder = export_model(phase, phase.parent / "export")
    >>> sorted(p.name for p in folder.iterdir())[:3]
    ['README.md', 'classifier.ckpt', 'embedding_model.ckpt']
    >>> export_model(phase, phase.parent / "e2", formats="onnx,int8")
    Traceback (most recent call last):
    ...
    ValueError: int8 needs calibration clips from the training data ...
    """
    formats = parse_formats(formats)
    phase_folder, export_folder = Path(phase_folder), Path(export_folder)
    spec = _check_phase_folder(phase_folder)
    save = save_folder_of(phase_folder)
    if export_folder.exists() and not export_folder.is_dir():
        raise FileExistsError(f"{export_folder} exists and is not a folder")
    if export_folder.is_dir() and any(export_folder.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"{export_folder} is not empty; pass --overwrite "
                "(overwrite=True) to replace it"
            )
    verify_rows = None if verify is None else read_clip_manifest(verify)
    calibration_rows = None
    if "int8" in formats:
        calibration_rows = _calibration_rows(
            phase_folder, calibration, calibration_clips
        )
    if any(name in ONNX_FORMATS for name in formats):
        require_onnx()
    limit = max_model_bytes
    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
    ):
        raise ValueError(f"max_model_bytes={limit!r}: give a positive number")
    _check_labels(spec, save / LABEL_ENCODER_FILE)
    best = find_best_checkpoint(phase_folder)
    modules = {}
    for name in MODEL_MODULES:
        if name not in best.paramfiles:
            raise FileNotFoundError(f"{best.path} has no {name}.ckpt")
        modules[name] = build_module(spec[name]).eval()
        load_state(modules[name], best.paramfiles[name])
    rate = int(spec["sample_rate"])
    channels = int(spec["embedding_model"]["config"].get("in_channels", 1))
    complexity = model_complexity(
        modules["embedding_model"], modules["classifier"], rate, channels
    )
    check_limits(complexity, max_params, max_macs, what="the exported model")
    # Before writing: each format holds at least its parameter count at
    # its precision (the file is measured again once it is made).
    _check_model_bytes(
        {
            name: {
                "parameter_bytes": complexity["parameter_bytes"][
                    FORMAT_PRECISION[name]
                ],
                "precision": FORMAT_PRECISION[name],
            }
            for name in formats
        },
        max_model_bytes,
        counted=True,
    )
    export_folder.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(export_folder)
    tmp = Path(
        tempfile.mkdtemp(
            dir=export_folder.parent,
            prefix=f".{export_folder.name}.export-{os.getpid()}-",
        )
    )
    try:
        net = Posteriors(modules["embedding_model"], modules["classifier"])
        figures = {}
        if "torch" in formats:
            _write_torch(tmp, modules, spec, save)
            if check:
                _check_loads_the_same(tmp, modules, spec)
            figures["torch"] = {
                "file": "embedding_model.ckpt, classifier.ckpt",
                "bytes_on_disk": sum(
                    (tmp / f"{name}.ckpt").stat().st_size
                    for name in MODEL_MODULES
                ),
                "parameter_bytes": complexity["parameter_bytes"]["fp32"],
            }
        if "onnx" in formats or "int8" in formats:
            fp32 = tmp / FORMAT_FILES["onnx"]
            to_onnx(
                modules["embedding_model"],
                modules["classifier"],
                spec,
                fp32,
                check=check,
            )
        if "int8" in formats:
            waveforms = [w for _, w in _clips(calibration_rows, rate, channels)]
            quantize_int8(fp32, tmp / FORMAT_FILES["int8"], waveforms)
            if "onnx" not in formats:
                fp32.unlink()
        for name in formats:
            if name in ONNX_FORMATS:
                path = tmp / FORMAT_FILES[name]
                stored = parameter_bytes(path)
                figures[name] = {
                    "file": path.name,
                    "bytes_on_disk": path.stat().st_size,
                    "parameter_bytes": stored["parameters"],
                    "quantization_bytes": stored["quantization"],
                }
        for name in formats:
            figures[name]["precision"] = FORMAT_PRECISION[name]
            figures[name]["macs"] = complexity["macs"]
        _check_model_bytes(figures, max_model_bytes)
        verification = None
        if verify_rows is not None:
            verification = compare_formats(net, tmp, formats, verify_rows, spec)
            for name in formats:
                figures[name].update(verification[name])
            _check_verified(verification, min_int8_agreement)
        info = {
            "phase_folder": str(phase_folder),
            "checkpoint": best.path.name,
            "formats": figures,
            "complexity": complexity,
            "verified_on": None if verify is None else str(verify),
            "pytorch_accuracy": None
            if verification is None
            else verification["pytorch"]["accuracy"],
            "min_int8_agreement": min_int8_agreement,
            "fp32_atol": FP32_ATOL,
        }
        (tmp / EXPORT_INFO_FILE).write_text(
            json.dumps(info, indent=2) + "\n", encoding="utf-8"
        )
        plot = phase_folder / "confusion_matrix.png"
        if plot.is_file():
            shutil.copyfile(plot, tmp / plot.name)
        card = model_card(
            spec,
            _read_results(phase_folder),
            best.path.name,
            plot.is_file(),
            data=data,
            complexity=complexity,
            formats=info,
        )
        (tmp / "README.md").write_text(card, encoding="utf-8")
        _put_in_place(tmp, export_folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info(
        "Exported %s (%s) to %s as %s",
        phase_folder,
        best.path,
        export_folder,
        ", ".join(formats),
    )
    return export_folder


def _write_torch(tmp, modules, spec, save):
    """The SpeechBrain folder: weights, label encoder, hyperparams.yaml."""
    for name in MODEL_MODULES:
        torch.save(modules[name].state_dict(), tmp / f"{name}.ckpt")
    shutil.copyfile(save / LABEL_ENCODER_FILE, tmp / LABEL_ENCODER_FILE)
    shutil.copyfile(save / LABEL_ENCODER_FILE, tmp / "label_encoder.ckpt")
    (tmp / "hyperparams.yaml").write_text(
        hyperparams_yaml(spec), encoding="utf-8"
    )


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _remove_abandoned(target):
    """Remove the work folders of killed exports to ``target``.

    Each export builds in ``.<name>.export-<pid>-*`` (and moves an old
    folder to ``.<name>.old-<pid>-*``) beside the target; one whose
    process is gone was abandoned by a kill.
    """
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(export|old)-(\d+)-")
    for path in target.parent.iterdir():
        found = pattern.match(path.name)
        if found and path.is_dir() and not _pid_alive(int(found.group(2))):
            shutil.rmtree(path, ignore_errors=True)


def _put_in_place(tmp, target):
    """Rename ``tmp`` to ``target``; an old ``target`` is removed after."""
    old = None
    if target.is_dir() and any(target.iterdir()):
        old = Path(
            tempfile.mkdtemp(
                dir=target.parent,
                prefix=f".{target.name}.old-{os.getpid()}-",
            )
        )
        os.replace(target, old / "folder")
    elif target.is_dir():
        target.rmdir()
    try:
        os.replace(tmp, target)
    except BaseException:
        if old is not None:
            os.replace(old / "folder", target)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def load_exported(export_folder, savedir=None, device="cpu"):
    """Load an exported folder with SpeechBrain's stock EncoderClassifier.

    Arguments
    ---------
    export_folder : str or pathlib.Path
        A local folder made by :func:`export_model`.
    savedir : str or pathlib.Path, optional
        Where SpeechBrain collects the files (symlinks to the folder's
        files). Default: the folder itself, so nothing is written.
    device : str

    Returns
    -------
    speechbrain.inference.classifiers.EncoderClassifier

    Example
    -------
    >>> load_exported(getfixture("tmpdir"))
    Traceback (most recent call last):
    ...
    FileNotFoundError: ... has no hyperparams.yaml: ...
    """
    from speechbrain.inference.classifiers import EncoderClassifier

    folder = Path(export_folder).absolute()
    if not (folder / "hyperparams.yaml").is_file():
        raise FileNotFoundError(
            f"{folder} has no hyperparams.yaml: not an exported model "
            "(python -m speechbrain_kd.export makes one)"
        )
    model = EncoderClassifier.from_hparams(
        source=str(folder),
        savedir=str(savedir if savedir is not None else folder),
        run_opts={"device": device},
    )
    # Check the label count against the classifier (and silence
    # SpeechBrain's "expect_len was never called" warning).
    scene_classifier = getattr(model.hparams, "scene_classifier", None)
    n_classes = getattr(scene_classifier, "config", {}).get("n_classes")
    if n_classes is not None:
        model.hparams.label_encoder.expect_len(n_classes)
    return model


def verify_export(
    export_folder, predictions_csv, manifest_csv, limit=None, atol=1e-3
):
    """Compare an export's predictions with the recipe's own evaluation.

    Every clip of ``predictions_csv`` (the ``<split>_predictions.csv`` the
    recipe wrote when it evaluated the phase) is read from ``manifest_csv``
    by the exported model (SpeechBrain's loader and resampler) and
    classified with ``classify_batch``.

    Arguments
    ---------
    export_folder : str or pathlib.Path
    predictions_csv : str or pathlib.Path
        Columns ``ID, target, prediction, <one posterior per label>``.
    manifest_csv : str or pathlib.Path
        SpeechBrain CSV with ``ID`` and ``wav``.
    limit : int, optional
        Check only the first ``limit`` clips.
    atol : float
        Posteriors further apart than this count as a difference
        (resamplers differ slightly when the file is not at the model's
        rate).

    Returns
    -------
    dict
        ``n_clips``, ``label_mismatches`` (IDs whose label differs),
        ``posterior_mismatches`` (IDs whose posteriors differ by more than
        ``atol``), ``max_abs_diff``.

    Example
    -------
    >>> verify_export(".", getfixture("tmpdir") + "/none.csv", "m.csv")
    Traceback (most recent call last):
    ...
    FileNotFoundError: ...none.csv does not exist
    """
    from speechbrain_kd.labels import encoder_labels

    for path in (predictions_csv, manifest_csv):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path} does not exist")
    with open(predictions_csv, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    manifest = read_manifest(manifest_csv)
    missing = [r["ID"] for r in rows if r["ID"] not in manifest]
    if missing:
        raise KeyError(
            f"{len(missing)} clip(s) of {predictions_csv} are not in "
            f"{manifest_csv}, e.g. {missing[:3]}"
        )
    model = load_exported(export_folder)
    labels = encoder_labels(model.hparams.label_encoder)
    absent = [label for label in labels if rows and label not in rows[0]]
    if absent:
        raise ValueError(
            f"{predictions_csv} has no posterior column for {absent}: it "
            f"was not written by the model exported in {export_folder}"
        )
    report = {
        "n_clips": 0,
        "label_mismatches": [],
        "posterior_mismatches": [],
        "max_abs_diff": 0.0,
    }
    for row in rows[:limit]:
        wav = model.load_audio(manifest[row["ID"]])
        with torch.no_grad():
            out_prob, _, _, predicted = model.classify_batch(wav[None])
        got = out_prob[0].exp().cpu()
        expected = torch.tensor([float(row[name]) for name in labels])
        diff = float((got - expected).abs().max())
        report["n_clips"] += 1
        report["max_abs_diff"] = max(report["max_abs_diff"], diff)
        if predicted[0] != row["prediction"]:
            report["label_mismatches"].append(row["ID"])
        if diff > atol:
            report["posterior_mismatches"].append(row["ID"])
    return report


def main(argv=None):
    """Command-line entry point (see the module docstring).

    Arguments
    ---------
    argv : list of str, optional
        Default ``sys.argv[1:]``.

    Example
    -------
    >>> tmp = str(getfixture("tmpdir"))
    >>> main([tmp + "/nowhere", tmp + "/export"])
    Traceback (most recent call last):
    ...
    FileNotFoundError: ...nowhere...
    """
    parser = argparse.ArgumentParser(
        description="Export a trained phase as a SpeechBrain model folder, "
        "ONNX and int8 ONNX."
    )
    parser.add_argument("phase_folder", help="a phase's output folder")
    parser.add_argument("export_folder", help="the folder to create")
    parser.add_argument(
        "--format",
        default="torch",
        help="comma-separated, of " + ", ".join(FORMATS) + " (default torch)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a non-empty folder"
    )
    parser.add_argument(
        "--data", default=None, help="one sentence on the training data"
    )
    parser.add_argument(
        "--verify",
        metavar="MANIFEST_CSV",
        default=None,
        help="compare every format with the trained model on these clips; "
        "fail (writing nothing) below the thresholds",
    )
    parser.add_argument(
        "--calibration",
        metavar="MANIFEST_CSV",
        default=None,
        help="int8 calibration clips (default: the phase's training manifest)",
    )
    parser.add_argument("--max_params", type=int, default=None)
    parser.add_argument("--max_macs", type=int, default=None)
    parser.add_argument(
        "--max_model_bytes",
        type=int,
        default=None,
        help="limit on the parameter bytes of the most compact format, at "
        "its precision (DCASE: 128000 at int8)",
    )
    parser.add_argument(
        "--min_int8_agreement",
        type=float,
        default=INT8_AGREEMENT,
        help=f"share of --verify clips on which int8 keeps PyTorch's "
        f"top-1 label (default {INT8_AGREEMENT})",
    )
    args = parser.parse_args(argv)
    try:
        formats = parse_formats(args.format)
    except ValueError as error:
        parser.error(f"--format: {error}")
    folder = export_model(
        args.phase_folder,
        args.export_folder,
        args.overwrite,
        data=args.data,
        formats=formats,
        verify=args.verify,
        calibration=args.calibration,
        max_params=args.max_params,
        max_macs=args.max_macs,
        max_model_bytes=args.max_model_bytes,
        min_int8_agreement=args.min_int8_agreement,
    )
    print(f"exported {args.phase_folder} to {folder} ({', '.join(formats)})")
    info = json.loads((folder / EXPORT_INFO_FILE).read_text(encoding="utf-8"))
    print(format_table(info))
    return 0


def format_table(info):
    """The figures of ``export.json`` as a text table.

    Example
    -------
    >>> table = format_table({"formats": {"onnx": {"file": "model.onnx",
    ...     "bytes_on_disk": 2000, "parameter_bytes": 1000,
    ...     "precision": "fp32", "macs": 10**6, "agreement": 1.0}}})
    >>> table.splitlines()[1].split()
    ['onnx', 'model.onnx', '2.0', 'kB', '1.0', 'kB', 'fp32', '1.0', 'M', '-', \
'100.0', '%']
    """

    def percent(value):
        return "-" if value is None else f"{100 * value:.1f} %"

    lines = [
        f"{'format':<7} {'file':<20} {'on disk':>8}  {'parameters':<13}"
        f" {'MACs/s':>6}  {'accuracy':>8}  {'agreement':>9}"
    ]
    for name, f in info["formats"].items():
        lines.append(
            f"{name:<7} {f['file'].split(',')[0]:<20} "
            f"{f['bytes_on_disk'] / 1000:>5.1f} kB  "
            f"{f['parameter_bytes'] / 1000:.1f} kB {f['precision']:<6}"
            f" {f['macs'] / 1e6:>4.1f} M  "
            f"{percent(f.get('accuracy')):>8}  "
            f"{percent(f.get('agreement')):>9}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (FileNotFoundError, FileExistsError, RuntimeError, ValueError) as e:
        sys.exit(f"error: {e}")
