"""The torch format of an export: a folder SpeechBrain's own classes load.

It holds ``hyperparams.yaml`` (both modules ``!new:`` with the constructor
arguments ``model_spec.json`` recorded), the weights of the phase's best
checkpoint and the label encoder; the stock ``EncoderClassifier`` loads it
(:func:`load_exported`), and :func:`verify_export` compares its predictions
with the recipe's own evaluation. :mod:`speechbrain_kd.export` makes it.
"""

import csv
import json
import shutil
import tempfile
from pathlib import Path

import torch

from speechbrain_kd.checkpoints import (
    LABEL_ENCODER_FILE,
    MODEL_MODULES,
    MODEL_SPEC_FILE,
)
from speechbrain_kd.manifests import read_manifest

EXPORT_FILES = (
    "hyperparams.yaml",
    "embedding_model.ckpt",
    "classifier.ckpt",
    LABEL_ENCODER_FILE,
    "label_encoder.ckpt",
    "README.md",
)


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


def _write_torch(tmp, modules, spec, save):
    """The SpeechBrain folder: weights, label encoder, hyperparams.yaml."""
    for name in MODEL_MODULES:
        torch.save(modules[name].state_dict(), tmp / f"{name}.ckpt")
    shutil.copyfile(save / LABEL_ENCODER_FILE, tmp / LABEL_ENCODER_FILE)
    shutil.copyfile(save / LABEL_ENCODER_FILE, tmp / "label_encoder.ckpt")
    (tmp / "hyperparams.yaml").write_text(
        hyperparams_yaml(spec), encoding="utf-8"
    )


def load_exported(export_folder, savedir=None, device="cpu"):
    """Load an exported folder with SpeechBrain's stock EncoderClassifier.

    Arguments
    ---------
    export_folder : str or pathlib.Path
        A local folder made by
        :func:`~speechbrain_kd.export.export_model`.
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
