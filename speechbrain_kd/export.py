"""Export a trained phase as a folder SpeechBrain's own classes can load.

    python -m speechbrain_kd.export PHASE_OUTPUT_FOLDER EXPORT_FOLDER \
        [--overwrite] [--push_to USER/REPO [--private]]

The folder holds ``hyperparams.yaml``, the weights of the best checkpoint
(``embedding_model.ckpt``, ``classifier.ckpt``), ``label_encoder.txt`` and a
model card ``README.md``, and loads with the stock

    from speechbrain.inference.classifiers import EncoderClassifier
    model = EncoderClassifier.from_hparams(source=EXPORT_FOLDER, savedir=...)
    out_prob, score, index, label = model.classify_file("clip.wav")

with no code beyond an installed ``speechbrain_kd``. Audio at any rate and
channel count is resampled to the model's rate by SpeechBrain's
``AudioNormalizer`` (``mix: keep``, so a binaural model keeps both
channels) and the model adapts the channel count itself.

A ``hyperparams.yaml`` from a hub can run arbitrary code when loaded
(HyperPyYAML's ``!new:``, ``!name:`` and ``!apply:`` call Python): read it
first, or list what it would call with :func:`audit_hyperparams`.
"""

import argparse
import csv
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import torch

from speechbrain_kd.checkpoints import (
    LABEL_ENCODER_FILE,
    find_best_checkpoint,
    load_state,
    save_folder_of,
)
from speechbrain_kd.dataio import read_manifest
from speechbrain_kd.models.spec import build_module, read_model_spec

CITATION = (
    'Jee-weon Jung, Hee-Soo Heo, Hye-jin Shim, Ha-Jin Yu, "Knowledge '
    'Distillation in Acoustic Scene Classification", IEEE Access 8:'
    "166870-166879, 2020, DOI 10.1109/ACCESS.2020.3021711"
)
# Callables an exported hyperparams.yaml may name.
SAFE_PREFIXES = ("speechbrain.", "speechbrain_kd.", "torch.nn.")


def _yaml_module(key, spec, indent=""):
    lines = [f"{key}: !new:{spec['class']}"]
    for name, value in spec["config"].items():
        lines.append(f"    {name}: {json.dumps(value)}")
    return "\n".join(indent + line for line in lines)


def hyperparams_yaml(spec):
    """The ``hyperparams.yaml`` of an exported model.

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

# Resample any input to the model's rate; keep every channel (the model
# adapts the channel count itself, so a binaural model is not mixed to mono).
audio_normalizer: !new:speechbrain.dataio.preprocess.AudioNormalizer
    sample_rate: !ref <sample_rate>
    mix: keep

# The model computes its own features.
compute_features: !new:speechbrain_kd.inference.PassThrough
mean_var_norm: !new:speechbrain_kd.inference.PassThrough

{_yaml_module("embedding_model", spec["embedding_model"])}

{_yaml_module("model_classifier", spec["classifier"])}

# EncoderClassifier reads the classifier's output as log posteriors.
classifier: !new:torch.nn.Sequential
    - !ref <model_classifier>
    - !new:torch.nn.LogSoftmax
        dim: -1

label_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder

modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>
    classifier: !ref <classifier>

# Files are read as <source>/<name>.ckpt (label_encoder.ckpt is a copy of
# label_encoder.txt under the name SpeechBrain's Pretrainer looks for).
pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
        classifier: !ref <model_classifier>
        label_encoder: !ref <label_encoder>
"""


def audit_hyperparams(path):
    """List what a HyperPyYAML file would import or call when loaded.

    Arguments
    ---------
    path : str or pathlib.Path

    Returns
    -------
    list of (str, bool)
        ``(tag target, is it under speechbrain, speechbrain_kd or
        torch.nn)`` in file order.

    Example
    -------
    >>> path = getfixture("tmpdir") + "/h.yaml"
    >>> text = "a: !new:torch.nn.Linear\\nb: !apply:os.system"
    >>> _ = open(path, "w").write(text)
    >>> audit_hyperparams(path)
    [('torch.nn.Linear', True), ('os.system', False)]
    """
    text = Path(path).read_text(encoding="utf-8")
    targets = re.findall(r"!(?:new|name|apply|module):([\w.]+)", text)
    return [(t, t.startswith(SAFE_PREFIXES)) for t in targets]


def export_model(phase_folder, export_folder, overwrite=False):
    """Turn the best checkpoint of a phase into a loadable model folder.

    Arguments
    ---------
    phase_folder : str or pathlib.Path
        A phase's output folder (baseline, specialist or student).
    export_folder : str or pathlib.Path
        Created whole or not at all.
    overwrite : bool
        Replace an existing non-empty ``export_folder``.

    Returns
    -------
    pathlib.Path
    """
    phase_folder, export_folder = Path(phase_folder), Path(export_folder)
    save = save_folder_of(phase_folder)
    spec = read_model_spec(save / "model_spec.json")
    best = find_best_checkpoint(phase_folder)
    if export_folder.exists() and any(export_folder.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"{export_folder} is not empty; pass --overwrite to replace it"
            )
    export_folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=export_folder.parent, prefix=".export-"))
    try:
        for name in ("embedding_model", "classifier"):
            module = build_module(spec[name])
            load_state(module, best.paramfiles[name])  # weights_only=True
            torch.save(module.state_dict(), tmp / f"{name}.ckpt")
        labels_file = save / LABEL_ENCODER_FILE
        if not labels_file.is_file():
            raise FileNotFoundError(f"{labels_file} is missing")
        shutil.copyfile(labels_file, tmp / LABEL_ENCODER_FILE)
        shutil.copyfile(labels_file, tmp / "label_encoder.ckpt")
        (tmp / "hyperparams.yaml").write_text(hyperparams_yaml(spec))
        results = _read_results(phase_folder)
        plot = phase_folder / "confusion_matrix.png"
        if plot.is_file():
            shutil.copyfile(plot, tmp / "confusion_matrix.png")
        (tmp / "README.md").write_text(
            model_card(spec, results, best, plot.is_file())
        )
        if export_folder.exists():
            shutil.rmtree(export_folder)
        os.replace(tmp, export_folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return export_folder


def _read_results(phase_folder):
    path = Path(phase_folder) / "test_results.json"
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def model_card(spec, results, checkpoint, has_plot):
    """The ``README.md`` of an exported model."""
    config = spec["embedding_model"]["config"]
    family = spec["embedding_model"]["class"].rsplit(".", 1)[-1]
    lines = [
        "---",
        "library_name: speechbrain",
        "tags: [audio-classification, acoustic-scene-classification, "
        "knowledge-distillation, speechbrain]",
        "---",
        "",
        f"# {family}: {spec.get('phase', 'model')} of speechbrain-kd",
        "",
        f"Acoustic scene classification ({len(spec['labels'])} classes: "
        f"{', '.join(spec['labels'])}) from raw audio at "
        f"{spec['sample_rate']} Hz, {config.get('in_channels', 1)} "
        "channel(s); other rates and channel counts are converted.",
        "",
        "## Method",
        "",
        "Trained with speechbrain-kd, which implements",
        f"{CITATION}: a baseline, specialists for the most confused pairs of",
        "scenes, and a student distilled from the soft labels of all of them.",
        "",
        "## Results (test split of the training data)",
        "",
    ]
    if results:
        lines += [
            f"Accuracy: **{100 * results['accuracy']:.2f} %** on "
            f"{results.get('n_clips', '?')} clips (checkpoint "
            f"{Path(checkpoint.path).name}).",
            "",
            "| class | accuracy |",
            "|---|---|",
        ]
        for label, acc in results["classwise_accuracy"].items():
            value = "n/a" if acc is None else f"{100 * acc:.1f} %"
            lines.append(f"| {label} | {value} |")
        lines.append("")
    else:
        lines += ["No test results were found for this checkpoint.", ""]
    if has_plot:
        lines += ["![confusion matrix](confusion_matrix.png)", ""]
    lines += [
        "## Use",
        "",
        "```python",
        "# pip install speechbrain-kd  (provides the model classes)",
        "from speechbrain.inference.classifiers import EncoderClassifier",
        "",
        'model = EncoderClassifier.from_hparams(source="<repo or folder>",',
        '                                       savedir="pretrained_model")',
        'out_prob, score, index, label = model.classify_file("clip.wav")',
        "```",
        "",
        "or `python -m speechbrain_kd.classify <folder> clip.wav --json`.",
        "",
        "## Safety",
        "",
        "`hyperparams.yaml` is HyperPyYAML: loading it imports and calls the",
        "Python objects it names (`!new:`, `!name:`, `!apply:`). Read it",
        "before loading a model from a hub, e.g. with",
        "`speechbrain_kd.export.audit_hyperparams(path)`, which lists every",
        "callable and flags those outside speechbrain, speechbrain_kd and",
        "torch.nn. Weights are plain state dicts.",
        "",
        "## Citation",
        "",
        CITATION,
        "",
    ]
    return "\n".join(lines)


def load_exported(export_folder, savedir=None, device="cpu"):
    """Load an exported folder with SpeechBrain's stock EncoderClassifier.

    Arguments
    ---------
    export_folder : str or pathlib.Path
    savedir : str or pathlib.Path, optional
        Where SpeechBrain collects the files (default: a temporary folder).
    device : str

    Returns
    -------
    speechbrain.inference.classifiers.EncoderClassifier
    """
    from speechbrain.inference.classifiers import EncoderClassifier

    savedir = savedir or tempfile.mkdtemp(prefix="sbkd-")
    return EncoderClassifier.from_hparams(
        source=str(Path(export_folder).absolute()),
        savedir=str(savedir),
        run_opts={"device": device},
    )


def verify_export(export_folder, predictions_csv, manifest_csv, limit=None):
    """Compare an export's predictions with the recipe's own evaluation.

    Classifies every clip of ``manifest_csv`` with the exported folder
    loaded by ``EncoderClassifier`` and compares the labels with
    ``predictions_csv`` (the ``<split>_predictions.csv`` the recipe wrote
    when it evaluated the phase).

    Arguments
    ---------
    export_folder : str or pathlib.Path
    predictions_csv : str or pathlib.Path
    manifest_csv : str or pathlib.Path
        SpeechBrain CSV with ``ID`` and ``wav``.
    limit : int, optional
        Check only the first ``limit`` clips.

    Returns
    -------
    tuple of (int, list of str)
        Clips checked and the IDs whose label differs.
    """
    with open(predictions_csv, newline="", encoding="utf-8") as f:
        expected = {r["ID"]: r["prediction"] for r in csv.DictReader(f)}
    manifest = read_manifest(manifest_csv)
    missing = set(expected) - set(manifest)
    if missing:
        raise KeyError(
            f"{len(missing)} clip(s) of {predictions_csv} are not in "
            f"{manifest_csv}, e.g. {sorted(missing)[:3]}"
        )
    model = load_exported(export_folder)
    ids = list(expected)[:limit]
    differ = []
    for clip_id in ids:
        _, _, _, label = model.classify_file(manifest[clip_id])
        if label[0] != expected[clip_id]:
            differ.append(clip_id)
    return len(ids), differ


def main(argv=None):
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("phase_folder")
    parser.add_argument("export_folder")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--push_to", metavar="REPO_ID", default=None)
    parser.add_argument("--private", action="store_true")
    args = parser.parse_args(argv)
    folder = export_model(args.phase_folder, args.export_folder, args.overwrite)
    print(f"exported {args.phase_folder} to {folder}")
    if args.push_to:
        from speechbrain_kd.hub import push_to_hub

        url = push_to_hub(folder, args.push_to, private=args.private)
        print(f"pushed to {url}")


if __name__ == "__main__":
    main()
