"""ONNX and int8 versions of a trained model, and running them.

The whole classifier, waveform to posteriors, front end included (the
log-mel families' STFT and mel filterbank are ONNX operators since opset
17), is exported with torch's own exporter (``torch.onnx.export(...,
dynamo=True)``, which needs ``onnxscript``), with dynamic batch and length
axes. The int8 model is ONNX Runtime's post-training quantization: the
convolutions statically (``onnxruntime.quantization.quantize_static``, QDQ
format, int8 weights per output channel, uint8 activations calibrated on
clips of the training data), the linear layers dynamically
(``quantize_dynamic``); the front end stays float.
Install the libraries with ``pip install "speechbrain-kd[export]"``.

Both files carry the labels, sample rate and channel count in their
metadata, so one ``.onnx`` file is a whole model::

    model = OnnxModel("model.int8.onnx")
    wav = load_audio("clip.wav", model.sample_rate, model.channels)
    posteriors = model.posteriors(wav[None].numpy())  # [1, n_classes]
"""

import copy
import json
import re
from pathlib import Path

import numpy as np
import torch

INPUT_NAME = "waveform"
OUTPUT_NAME = "posteriors"
OPSET = 18
# What a front end is made of: kept in float by the quantizer (a log-mel
# front end's power spectrum spans too many decades for 8 bits).
FRONT_END_CLASSES = ("Fbank", "STFT", "Filterbank", "Spectrogram")
# The convolutions are quantized statically (calibrated activations), the
# linear layers dynamically (weights int8, activation ranges taken per
# batch when run): on the demo's log-mel CNN, static linear layers moved
# the posteriors by up to 0.10 and cut the top-1 agreement with the float
# model from 98.9 to 96.7 %; dynamic ones by 0.008 (97.8 %), and they keep
# the weights in one byte each, as DCASE's 128 kB limit counts them.
STATIC_OPERATORS = ["Conv"]
DYNAMIC_OPERATORS = ["Gemm", "MatMul"]
METADATA_KEYS = ("labels", "sample_rate", "in_channels", "family", "format")


def require_onnx():
    """Import onnx and onnxruntime, or say how to install them.

    Example
    -------
    >>> onnx, ort = require_onnx()
    >>> hasattr(ort, "InferenceSession")
    True
    """
    try:
        import onnx
        import onnxruntime
    except ImportError as error:
        raise RuntimeError(
            f"the onnx and int8 formats need onnx, onnxruntime and "
            f'onnxscript ({error}); pip install "speechbrain-kd[export]"'
        ) from error
    return onnx, onnxruntime


class Posteriors(torch.nn.Module):
    """Waveforms ``[B, T, C]`` -> posteriors ``[B, n_classes]`` (eval mode).

    A copy of the two modules, in eval mode (the originals are not
    changed).

    Arguments
    ---------
    embedding_model : torch.nn.Module
    classifier : torch.nn.Module

    Example
    -------
    >>> from speechbrain_kd.models import RawWaveformCNN, SceneClassifier
    >>> emb = RawWaveformCNN(first_conv_channels=4, first_conv_kernel=4,
    ...     block_channels=[4], final_channels=4, embedding_dim=4)
    >>> net = Posteriors(emb, SceneClassifier(4, 3))
    >>> wav = torch.randn(2, 800, 2)
    >>> expected = torch.softmax(net.classifier(emb.eval()(wav)), -1)
    >>> torch.allclose(net(wav), expected)
    True
    """

    def __init__(self, embedding_model, classifier):
        super().__init__()
        self.embedding_model = copy.deepcopy(embedding_model).eval()
        self.classifier = copy.deepcopy(classifier).eval()

    def forward(self, waveform):
        """Posteriors of a batch of waveforms at the model's rate."""
        return torch.softmax(
            self.classifier(self.embedding_model(waveform)), -1
        )

    def front_end_scopes(self):
        """Module paths of the front end (the log-mels), kept in float."""
        return [
            name
            for name, module in self.named_modules()
            if type(module).__name__ in FRONT_END_CLASSES
        ]


def _unsupported(error):
    """The operator an exporter error names, and why, if it says."""
    text = ""
    while error is not None:
        text += f"\n{error}"
        error = error.__cause__ or error.__context__
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    operator = re.search(r"op='([^']+)'", text) or re.search(
        r"(aten[.:]+[A-Za-z_][\w.]*)", text
    )
    reason = re.search(r"Failure message: ([^\n]+)", text)
    return (
        operator.group(1) if operator else "an operator",
        reason.group(1).strip() if reason else text.strip().splitlines()[0],
    )


def _in_scopes(node, scopes):
    """Whether the exporter placed ``node`` inside one of the modules."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            return any(f"'{scope}'" in prop.value for scope in scopes)
    return False


def to_onnx(embedding_model, classifier, spec, path, check=True):
    """Export the whole classifier, waveform to posteriors, to ONNX.

    Arguments
    ---------
    embedding_model, classifier : torch.nn.Module
        The trained modules (not changed).
    spec : dict
        The phase's ``model_spec.json`` (labels, sample rate, family).
    path : str or pathlib.Path
        The ``.onnx`` file to write.
    check : bool
        Run the file in ONNX Runtime at two batch sizes and lengths and
        compare it with PyTorch.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError
        When the family holds an operator the exporter cannot express,
        naming it and the formats that work.

    Example
    -------
    >>> from speechbrain_kd.models import LogMelCNN, SceneClassifier
    >>> from speechbrain_kd.models.spec import module_spec
    >>> emb = LogMelCNN(8000, n_mels=8, n_fft=256, conv_channels=[2],
    ...                 embedding_dim=2)
    >>> clf = SceneClassifier(2, 2)
    >>> spec = {"embedding_model": module_spec(emb), "sample_rate": 8000,
    ...         "labels": ["bus", "park"]}
    >>> path = to_onnx(emb, clf, spec, getfixture("tmpdir") + "/m.onnx")
    >>> OnnxModel(path).labels
    ['bus', 'park']
    """
    onnx, _ = require_onnx()
    path = Path(path)
    rate = int(spec["sample_rate"])
    channels = int(spec["embedding_model"]["config"].get("in_channels", 1))
    family = spec["embedding_model"]["class"].rsplit(".", 1)[-1]
    net = Posteriors(embedding_model, classifier).eval()
    example = torch.randn(2, 2 * rate, channels, generator=torch.Generator())
    dynamic = torch.export.Dim.DYNAMIC
    try:
        program = torch.onnx.export(
            net,
            (example,),
            dynamo=True,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: dynamic, 1: dynamic},),
            verbose=False,
        )
    except ImportError as error:
        raise RuntimeError(
            f"torch's ONNX exporter needs onnxscript ({error}); "
            'pip install "speechbrain-kd[export]"'
        ) from error
    except Exception as error:  # the exporter raises many kinds
        operator, reason = _unsupported(error)
        raise ValueError(
            f"{family} cannot be exported to ONNX: operator {operator} has no "
            f"ONNX translation in torch {torch.__version__} (opset {OPSET}): "
            f"{reason[:200]}; formats that work for it: torch"
        ) from error
    model = program.model_proto
    scopes = net.front_end_scopes()
    front_end = [n for n in model.graph.node if _in_scopes(n, scopes)]
    users = {}
    for node in model.graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    tables = [
        t.name
        for t in model.graph.initializer
        if users.get(t.name)
        and all(_in_scopes(n, scopes) for n in users[t.name])
    ]
    # The exporter's per-node provenance (module paths, source lines) is a
    # third of the file; what the quantizer and the counts need of it is
    # kept in the model's metadata.
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    metadata = {
        "labels": json.dumps(list(spec["labels"])),
        "sample_rate": str(rate),
        "in_channels": str(channels),
        "family": family,
        "format": "onnx",
        "front_end_nodes": json.dumps([n.name for n in front_end]),
        "front_end_tables": json.dumps(tables),
    }
    onnx.helper.set_model_props(model, metadata)
    onnx.save(model, str(path))
    if check:
        _check_onnx(path, net, rate, channels)
    return path


def _check_onnx(path, net, rate, channels, atol=1e-4):
    """Compare an ONNX file with PyTorch at two batch sizes and lengths.

    Raises a ``RuntimeError`` naming the shapes when ONNX Runtime refuses
    an input (a length fixed at export) or the posteriors differ.
    """
    model = OnnxModel(path)
    generator = torch.Generator().manual_seed(0)
    for batch, seconds in ((1, 1.5), (3, 0.75)):
        shape = (batch, int(seconds * rate), channels)
        wav = torch.randn(*shape, generator=generator)
        with torch.no_grad():
            expected = net(wav).numpy()
        try:
            got = model.posteriors(wav.numpy())
        except Exception as error:
            raise RuntimeError(
                f"{path} does not run a batch of {batch} clips of "
                f"{wav.shape[1]} samples in ONNX Runtime: {error}"
            ) from error
        diff = float(np.abs(got - expected).max())
        if not diff <= atol:
            raise RuntimeError(
                f"{path} differs from the PyTorch model by {diff:.3g} on a "
                f"batch of {batch} clips of {wav.shape[1]} samples"
            )


class _Calibration:
    """ONNX Runtime's calibration reader over a list of waveforms."""

    def __init__(self, waveforms):
        self.items = iter(waveforms)

    def get_next(self):
        wav = next(self.items, None)
        if wav is None:
            return None
        return {INPUT_NAME: np.asarray(wav, dtype=np.float32)[None]}

    def rewind(self):
        raise RuntimeError("calibration clips are read once")


def quantize_int8(onnx_path, int8_path, waveforms):
    """Post-training static int8 quantization of an exported ONNX model.

    ONNX Runtime's ``quantize_static`` for the convolutions (QDQ format,
    weights int8 per output channel, activations uint8 with ranges
    calibrated (min/max) on ``waveforms``), then ``quantize_dynamic`` for
    the linear layers (weights int8 per output channel); the front end
    (STFT, mel filterbank, log) stays float.

    Arguments
    ---------
    onnx_path : str or pathlib.Path
        A file made by :func:`to_onnx`.
    int8_path : str or pathlib.Path
        The file to write.
    waveforms : list of array
        Calibration clips ``[T, C]`` at the model's rate (drawn from the
        training data).

    Returns
    -------
    pathlib.Path

    Example
    -------
    >>> quantize_int8("m.onnx", "m.int8.onnx", [])
    Traceback (most recent call last):
    ...
    ValueError: int8 quantization needs calibration clips ...
    """
    if len(waveforms) == 0:
        raise ValueError(
            "int8 quantization needs calibration clips (clips of the "
            "training data): none were given"
        )
    onnx, _ = require_onnx()
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    model = onnx.load(str(onnx_path))
    props = {p.key: p.value for p in model.metadata_props}
    front_end = json.loads(props.get("front_end_nodes", "[]"))
    quantize_static(
        str(onnx_path),
        str(int8_path),
        _Calibration(waveforms),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=STATIC_OPERATORS,
        nodes_to_exclude=front_end,
        calibrate_method=CalibrationMethod.MinMax,
    )
    quantize_dynamic(
        str(int8_path),
        str(int8_path),
        op_types_to_quantize=DYNAMIC_OPERATORS,
        nodes_to_exclude=front_end,
        per_channel=True,
        weight_type=QuantType.QInt8,
    )
    quantized = onnx.load(str(int8_path))
    onnx.helper.set_model_props(quantized, {**props, "format": "int8"})
    onnx.save(quantized, str(int8_path))
    return Path(int8_path)


def parameter_bytes(path):
    """Bytes of a model's parameters as stored in an ONNX file.

    Weights and biases at the type they are stored in (int8 weights one
    byte each, int32 biases four), as DCASE counts parameter memory. Not
    parameters: the quantization scales and zero points (the quantizer's
    ``<name>_scale``, ``<name>_zero_point``), the front end's fixed tables
    (window, mel filterbank) and shape constants (int64).

    Arguments
    ---------
    path : str or pathlib.Path

    Returns
    -------
    dict
        ``parameters`` and ``quantization`` (scales and zero points) in
        bytes.

    Example
    -------
    >>> parameter_bytes(getfixture("tmpdir") + "/none.onnx")
    Traceback (most recent call last):
    ...
    FileNotFoundError: ...none.onnx does not exist
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path} does not exist")
    onnx, _ = require_onnx()
    from onnx import numpy_helper

    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    tables = set(json.loads(props.get("front_end_tables", "[]")))
    total = {"parameters": 0, "quantization": 0}
    for tensor in model.graph.initializer:
        array = numpy_helper.to_array(tensor)
        if array.dtype in (np.int64, np.bool_) or tensor.name in tables:
            continue
        quantization = tensor.name.endswith(("_scale", "_zero_point"))
        total["quantization" if quantization else "parameters"] += array.nbytes
    return total


class OnnxModel:
    """An exported ``.onnx`` file in ONNX Runtime.

    Arguments
    ---------
    path : str or pathlib.Path
        A file made by :func:`to_onnx` or :func:`quantize_int8`.
    threads : int, optional
        Intra-op threads (default: ONNX Runtime's, all cores).

    Example
    -------
    >>> OnnxModel(getfixture("tmpdir") + "/none.onnx")
    Traceback (most recent call last):
    ...
    FileNotFoundError: ...none.onnx does not exist
    """

    def __init__(self, path, threads=None):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist")
        _, ort = require_onnx()
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:
            raise RuntimeError(
                f"ONNX Runtime cannot load {path}: {error}"
            ) from error
        props = self.session.get_modelmeta().custom_metadata_map
        missing = [k for k in METADATA_KEYS if k not in props]
        if missing:
            raise ValueError(
                f"{path} has no {', '.join(missing)} in its metadata: not "
                "a model made by python -m speechbrain_kd.export"
            )
        self.path = path
        self.labels = json.loads(props["labels"])
        self.sample_rate = int(props["sample_rate"])
        self.channels = int(props["in_channels"])
        self.format = props["format"]

    def posteriors(self, waveforms):
        """``[B, T, C]`` float32 waveforms -> ``[B, n_classes]``.

        Arguments
        ---------
        waveforms : numpy.ndarray

        Returns
        -------
        numpy.ndarray
        """
        batch = np.ascontiguousarray(waveforms, dtype=np.float32)
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
