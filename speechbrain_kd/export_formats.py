"""The formats of an export, and each format against the trained model.

``torch`` (the SpeechBrain folder of
:mod:`speechbrain_kd.speechbrain_folder`), ``onnx`` and ``int8``
(:mod:`speechbrain_kd.onnx_model`): their files and precisions, the clips
of a manifest they are compared on, the thresholds they must meet and the
table of their figures.
"""

import csv
from pathlib import Path

import torch

from speechbrain_kd.audio import load_audio
from speechbrain_kd.onnx_model import OnnxModel
from speechbrain_kd.speechbrain_folder import load_exported

# torch: the SpeechBrain folder; onnx: model.onnx, waveform to posteriors;
# int8: model.int8.onnx, statically quantized.
FORMATS = ("torch", "onnx", "int8")
ONNX_FORMATS = ("onnx", "int8")
FORMAT_FILES = {"onnx": "model.onnx", "int8": "model.int8.onnx"}
FORMAT_PRECISION = {"torch": "fp32", "onnx": "fp32", "int8": "int8"}
# fp32 formats must give PyTorch's posteriors within float tolerance.
FP32_ATOL = 1e-4
# int8 must keep PyTorch's top-1 label on this share of the --verify clips
# (measured on the demo students: see the README's "Export formats").
INT8_AGREEMENT = 0.97


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

    Example
    -------
    >>> import soundfile
    >>> from speechbrain_kd.onnx_model import Posteriors
    >>> class Loudness(torch.nn.Module):
    ...     def forward(self, wavs, lengths=None):
    ...         return wavs.abs().mean(1)
    >>> net = Posteriors(Loudness(), torch.nn.Linear(1, 2))
    >>> wav = str(getfixture("tmpdir") / "c.wav")
    >>> soundfile.write(wav, torch.ones(800).numpy() / 2, 8000)
    >>> spec = {"sample_rate": 8000, "labels": ["a", "b"],
    ...         "embedding_model": {"config": {"in_channels": 1}}}
    >>> rows = [{"ID": "c", "wav": wav}]  # no scene: no accuracy
    >>> compare_formats(net, None, [], rows, spec)
    {'pytorch': {'n_clips': 1, 'accuracy': None}}
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
