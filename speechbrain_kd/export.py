"""Export a trained phase as a folder SpeechBrain's own classes can load.

    python -m speechbrain_kd.export PHASE_OUTPUT_FOLDER EXPORT_FOLDER \
        [--overwrite] [--verify MANIFEST_CSV] [--data SENTENCE]

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
from speechbrain_kd.complexity import model_complexity
from speechbrain_kd.dataio import read_manifest
from speechbrain_kd.model_card import model_card
from speechbrain_kd.models.spec import build_module

logger = logging.getLogger(__name__)

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


def export_model(
    phase_folder, export_folder, overwrite=False, check=True, data=None
):
    """Turn the best checkpoint of a phase into a loadable model folder.

    Arguments
    ---------
    phase_folder : str or pathlib.Path
        A phase's output folder (baseline, specialist or student).
    export_folder : str or pathlib.Path
        Created whole or not at all (built in a temporary folder beside it,
        then renamed).
    overwrite : bool
        Replace an existing non-empty ``export_folder``.
    check : bool
        Load the new folder with SpeechBrain's ``EncoderClassifier`` and
        check that it gives the trained model's posteriors on a random
        waveform before it is put in place.
    data : str, optional
        A sentence on the training data for the model card.

    Returns
    -------
    pathlib.Path

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
    """
    phase_folder, export_folder = Path(phase_folder), Path(export_folder)
    save = save_folder_of(phase_folder)
    spec = read_phase_spec(phase_folder)
    if export_folder.exists() and not export_folder.is_dir():
        raise FileExistsError(f"{export_folder} exists and is not a folder")
    if export_folder.is_dir() and any(export_folder.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"{export_folder} is not empty; pass --overwrite "
                "(overwrite=True) to replace it"
            )
    _check_labels(spec, save / LABEL_ENCODER_FILE)
    best = find_best_checkpoint(phase_folder)
    export_folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=export_folder.parent, prefix=".export-"))
    try:
        modules = {}
        for name in MODEL_MODULES:
            if name not in best.paramfiles:
                raise FileNotFoundError(f"{best.path} has no {name}.ckpt")
            modules[name] = build_module(spec[name]).eval()
            load_state(modules[name], best.paramfiles[name])
            torch.save(modules[name].state_dict(), tmp / f"{name}.ckpt")
        shutil.copyfile(save / LABEL_ENCODER_FILE, tmp / LABEL_ENCODER_FILE)
        shutil.copyfile(save / LABEL_ENCODER_FILE, tmp / "label_encoder.ckpt")
        (tmp / "hyperparams.yaml").write_text(
            hyperparams_yaml(spec), encoding="utf-8"
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
            complexity=model_complexity(
                modules["embedding_model"],
                modules["classifier"],
                spec["sample_rate"],
                spec["embedding_model"]["config"].get("in_channels", 1),
            ),
        )
        (tmp / "README.md").write_text(card, encoding="utf-8")
        if check:
            _check_loads_the_same(tmp, modules, spec)
        _put_in_place(tmp, export_folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info(
        "Exported %s (%s) to %s", phase_folder, best.path, export_folder
    )
    return export_folder


def _put_in_place(tmp, target):
    """Rename ``tmp`` to ``target``; an old ``target`` is removed after."""
    old = None
    if target.is_dir() and any(target.iterdir()):
        old = Path(tempfile.mkdtemp(dir=target.parent, prefix=".old-export-"))
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
        description="Export a trained phase as a SpeechBrain model folder."
    )
    parser.add_argument("phase_folder", help="a phase's output folder")
    parser.add_argument("export_folder", help="the folder to create")
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
        help="check the export against <phase>/test_predictions.csv",
    )
    args = parser.parse_args(argv)
    folder = export_model(
        args.phase_folder, args.export_folder, args.overwrite, data=args.data
    )
    print(f"exported {args.phase_folder} to {folder}")
    if args.verify:
        predictions = Path(args.phase_folder) / "test_predictions.csv"
        report = verify_export(folder, predictions, args.verify)
        print(
            f"verified {report['n_clips']} clips: "
            f"{len(report['label_mismatches'])} label(s) differ, largest "
            f"posterior difference {report['max_abs_diff']:.2g}"
        )
        if report["label_mismatches"]:
            print(f"differing clips: {report['label_mismatches'][:10]}")
            return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (FileNotFoundError, FileExistsError, RuntimeError, ValueError) as e:
        sys.exit(f"error: {e}")
