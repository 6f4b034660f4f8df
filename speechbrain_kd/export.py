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

This module is the export's one entry, :func:`export_model` (arguments
checked, formats built and checked, the folder put in place whole), and its
command line, about 530 lines; each format is in
:mod:`speechbrain_kd.speechbrain_folder` and
:mod:`speechbrain_kd.export_formats`.
"""

import argparse
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

from speechbrain_kd.checkpoints import (
    LABEL_ENCODER_FILE,
    MODEL_MODULES,
    find_best_checkpoint,
    load_state,
    read_phase_spec,
    save_folder_of,
)
from speechbrain_kd.complexity import check_limits, model_complexity
from speechbrain_kd.environment import run_command
from speechbrain_kd.export_formats import (
    FORMAT_FILES,
    FORMAT_PRECISION,
    FORMATS,
    FP32_ATOL,
    INT8_AGREEMENT,
    ONNX_FORMATS,
    _check_model_bytes,
    _check_verified,
    _clips,
    compare_formats,
    format_table,
    parse_formats,
    read_clip_manifest,
)
from speechbrain_kd.hparams_preview import written_settings
from speechbrain_kd.model_card import model_card
from speechbrain_kd.models.spec import build_module
from speechbrain_kd.onnx_model import (
    Posteriors,
    parameter_bytes,
    quantize_int8,
    require_onnx,
    to_onnx,
)
from speechbrain_kd.speechbrain_folder import (
    _check_labels,
    _check_loads_the_same,
    _write_torch,
)

logger = logging.getLogger(__name__)

EXPORT_INFO_FILE = "export.json"
# Calibration clips drawn from the training manifest for int8.
CALIBRATION_CLIPS = 100


def _read_results(phase_folder):
    path = Path(phase_folder) / "test_results.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error


def _phase_setting(phase_folder, key):
    """A top-level scalar of a phase's ``hyperparams.yaml`` (or None)."""
    path = Path(phase_folder) / "hyperparams.yaml"
    if not path.is_file():
        return None
    return written_settings(path).get(key)


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
        Of :data:`~speechbrain_kd.export_formats.FORMATS`: ``torch`` (a
        SpeechBrain folder), ``onnx`` (``model.onnx``, waveform to
        posteriors) and ``int8`` (``model.int8.onnx``, statically
        quantized).
    verify : str or pathlib.Path, optional
        A manifest (``ID``, ``wav``, ``scene``) on whose clips every format
        is compared with the trained PyTorch model; the export fails below
        the thresholds (fp32: same top-1 on every clip and posteriors
        within :data:`~speechbrain_kd.export_formats.FP32_ATOL`; int8:
        ``min_int8_agreement``).
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


def main(argv=None):
    """Command-line entry point (see the module docstring).

    ``argv``: the command line's words (default ``sys.argv[1:]``).

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


if __name__ == "__main__":
    run_command(
        main, (FileNotFoundError, FileExistsError, RuntimeError, ValueError)
    )
