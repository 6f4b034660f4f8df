"""Classify audio files with a trained phase folder or an exported model.

    python -m speechbrain_kd.classify MODEL PATH [PATH ...] [--json] [--top_k 3]
        [--format torch|onnx|int8]

``MODEL`` is a phase output folder (its best checkpoint, loaded with
:func:`speechbrain_kd.checkpoints.load_trained_model`), a folder made by
``python -m speechbrain_kd.export`` (its torch format loaded with
SpeechBrain's stock ``EncoderClassifier``; ``--format onnx`` or ``int8``
runs its ``model.onnx`` or ``model.int8.onnx`` in ONNX Runtime) or one
exported ``.onnx`` file. ``PATH`` is an audio file or a folder searched for
``.wav``/``.flac``/``.ogg`` files. Audio at any rate and channel count is
resampled and adapted to the model. Prints one line per file (path, label,
top-k probabilities), or with ``--json`` one JSON object per line. A file
with NaN or infinite samples is an error naming it.
"""

import argparse
import json
from pathlib import Path

import torch

from speechbrain_kd.audio import load_audio
from speechbrain_kd.checkpoints import load_trained_model, save_folder_of
from speechbrain_kd.environment import run_command

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


def audio_files(paths):
    """Expand folders into their audio files (sorted); check files exist.

    Arguments
    ---------
    paths : list of str or pathlib.Path
        Audio files (any format soundfile reads) or folders.

    Returns
    -------
    list of pathlib.Path

    Example
    -------
    >>> audio_files([getfixture("tmpdir") + "/nothing.wav"])
    Traceback (most recent call last):
    ...
    FileNotFoundError: ...nothing.wav does not exist
    """
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(
                p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES
            )
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path} does not exist")
    if not files:
        raise FileNotFoundError(f"no audio files in {list(map(str, paths))}")
    return files


class Classifier:
    """Posteriors for audio files from a phase folder or an export.

    Arguments
    ---------
    model_folder : str or pathlib.Path
        A phase output folder (``save/model_spec.json``), an export folder
        (``hyperparams.yaml``, ``model.onnx``, ``model.int8.onnx``) or one
        exported ``.onnx`` file.
    device : str
        For the PyTorch models (ONNX Runtime runs on the CPU).
    format : str, optional
        Which format of an export folder to run (``torch``, ``onnx`` or
        ``int8``); default: the first the folder holds, in that order.

    Example
    -------
    >>> Classifier(getfixture("tmpdir"))
    Traceback (most recent call last):
    ...
    FileNotFoundError: ... is neither a phase output folder ...
    """

    def __init__(self, model_folder, device="cpu", format=None):
        from speechbrain_kd.export_formats import FORMAT_FILES, FORMATS

        folder = Path(model_folder)
        self.device = device
        if format is not None and format not in FORMATS:
            raise ValueError(
                f"unknown format {format!r}; known: {', '.join(FORMATS)}"
            )
        if folder.is_file() and folder.suffix == ".onnx":
            self._use_onnx(folder)
            return
        if not folder.is_dir():
            raise FileNotFoundError(f"model folder {folder} does not exist")
        if (save_folder_of(folder) / "model_spec.json").is_file():
            self._use_phase(folder)
            return
        held = {"torch": (folder / "hyperparams.yaml").is_file()}
        held.update(
            {n: (folder / f).is_file() for n, f in FORMAT_FILES.items()}
        )
        available = [name for name in FORMATS if held[name]]
        if not available:
            raise FileNotFoundError(
                f"{folder} is neither a phase output folder (save/"
                "model_spec.json) nor an exported model (hyperparams.yaml, "
                "model.onnx or model.int8.onnx)"
            )
        chosen = format or available[0]
        if chosen not in available:
            raise FileNotFoundError(
                f"{folder} holds no {chosen} export; it holds "
                f"{', '.join(available)}"
            )
        if chosen == "torch":
            self._use_torch_export(folder)
        else:
            self._use_onnx(folder / FORMAT_FILES[chosen])

    def _use_phase(self, folder):
        model = load_trained_model(folder, device=self.device)
        self.labels = model.labels
        channels = model.spec["embedding_model"]["config"].get("in_channels", 1)
        self._load = lambda path: load_audio(path, model.sample_rate, channels)

        def run(wav):
            with torch.no_grad():
                logits = model(wav[None].to(self.device))
            return torch.softmax(logits, -1)[0].cpu()

        self._run = run

    def _use_torch_export(self, folder):
        from speechbrain_kd.labels import encoder_labels
        from speechbrain_kd.speechbrain_folder import load_exported

        model = load_exported(folder, device=self.device)
        self.labels = encoder_labels(model.hparams.label_encoder)

        def load(path):
            try:
                return model.load_audio(str(path))
            except Exception as error:
                raise RuntimeError(
                    f"cannot read audio file {path}: {error}"
                ) from error

        def run(wav):
            with torch.no_grad():
                out_prob, _, _, _ = model.classify_batch(wav[None])
            return out_prob[0].exp().cpu()

        self._load, self._run = load, run

    def _use_onnx(self, path):
        from speechbrain_kd.onnx_model import OnnxModel

        model = OnnxModel(path)
        self.labels = model.labels
        self._load = lambda p: load_audio(p, model.sample_rate, model.channels)
        self._run = lambda wav: torch.from_numpy(
            model.posteriors(wav[None].numpy())[0]
        )

    def __call__(self, path, top_k=3):
        """``{"file", "label", "probabilities": {label: p}}`` (top k)."""
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        wav = self._load(path)
        if not torch.isfinite(wav).all():
            raise ValueError(f"{path} holds NaN or infinite samples")
        probs = self._run(wav)
        order = torch.argsort(probs, descending=True)[:top_k]
        return {
            "file": str(path),
            "label": self.labels[int(order[0])],
            "probabilities": {
                self.labels[int(i)]: round(float(probs[i]), 6) for i in order
            },
        }


def main(argv=None):
    """Command-line entry point: ``python -m speechbrain_kd.classify``.

    ``argv``: the command line's words (default ``sys.argv[1:]``).

    Example
    -------
    >>> main(["results/student", "clip.wav", "--top_k", "0"])
    Traceback (most recent call last):
    ...
    SystemExit: 2
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="phase output folder or export folder")
    parser.add_argument("paths", nargs="+", help="wav files or folders")
    parser.add_argument(
        "--json", action="store_true", help="one JSON object per file"
    )
    parser.add_argument(
        "--top_k", type=int, default=3, help="probabilities to show"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--format",
        choices=("torch", "onnx", "int8"),
        default=None,
        help="the format to run from an export folder holding several "
        "(default: the first of torch, onnx, int8 it holds)",
    )
    args = parser.parse_args(argv)
    if args.top_k < 1:
        parser.error(f"--top_k must be at least 1, got {args.top_k}")
    classify = Classifier(args.model, device=args.device, format=args.format)
    for path in audio_files(args.paths):
        result = classify(path, top_k=args.top_k)
        if args.json:
            print(json.dumps(result, allow_nan=False))
        else:
            probs = ", ".join(
                f"{k} {v:.3f}" for k, v in result["probabilities"].items()
            )
            print(f"{path}\t{result['label']}\t({probs})")
    return 0


if __name__ == "__main__":
    run_command(main, (FileNotFoundError, RuntimeError, ValueError))
