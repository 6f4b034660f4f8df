"""The model card (``README.md``) of an exported model.

What the model is, the method that trained it (Jung, Heo, Shim, Yu,
"Knowledge Distillation in Acoustic Scene Classification", IEEE Access
2020), its test results, its size and cost, how to load it with
SpeechBrain's own classes, and why to audit its ``hyperparams.yaml`` first.
"""

from pathlib import Path

CITATION = (
    'Jee-weon Jung, Hee-Soo Heo, Hye-jin Shim, Ha-Jin Yu, "Knowledge '
    'Distillation in Acoustic Scene Classification", IEEE Access 8:'
    "166870-166879, 2020, DOI 10.1109/ACCESS.2020.3021711"
)


def model_card(
    spec,
    results,
    checkpoint_name,
    has_plot,
    data=None,
    complexity=None,
    formats=None,
):
    """The ``README.md`` of an exported model.

    Arguments
    ---------
    spec : dict
        The phase's ``model_spec.json``.
    results : dict or None
        The phase's ``test_results.json``.
    checkpoint_name : str
        The checkpoint the weights come from.
    has_plot : bool
        Whether ``confusion_matrix.png`` is in the folder.
    data : str, optional
        A sentence on the training data.
    complexity : dict, optional
        :func:`speechbrain_kd.complexity.model_complexity` of the model.
    formats : dict, optional
        The export's ``export.json``: a table of its formats (file, size,
        parameter bytes, MACs, accuracy, agreement) and how to run each.

    Returns
    -------
    str

    Example
    -------
    >>> from speechbrain_kd.models import SceneClassifier, module_spec
    >>> clf = module_spec(SceneClassifier(4, 2))
    >>> spec = {"embedding_model": clf, "classifier": clf,
    ...         "sample_rate": 8000, "labels": ["a", "b"]}
    >>> card = model_card(spec, None, "CKPT+1", False)
    >>> "10.1109/ACCESS.2020.3021711" in card
    True
    >>> import torch
    >>> from speechbrain_kd.complexity import model_complexity
    >>> cost = model_complexity(torch.nn.Identity(), SceneClassifier(4, 2),
    ...     8000, n_channels=4)
    >>> card = model_card(spec, None, "CKPT+1", False, complexity=cost)
    >>> f"| {cost['parameters']:,} |" in card
    True
    >>> info = {"formats": {"int8": {"file": "model.int8.onnx",
    ...     "bytes_on_disk": 9000, "parameter_bytes": 3000,
    ...     "precision": "int8", "macs": 10**6, "accuracy": 0.9,
    ...     "agreement": 0.99, "max_abs_diff": 0.01}}}
    >>> card = model_card(spec, None, "CKPT+1", False, formats=info)
    >>> "| int8 | `model.int8.onnx` | 9.0 kB | 3.0 kB (int8) |" in card
    True
    >>> "OnnxModel" in card and "EncoderClassifier" not in card
    True
    """
    config = spec["embedding_model"]["config"]
    family = spec["embedding_model"]["class"].rsplit(".", 1)[-1]
    phase = spec.get("phase", "model")
    labels = list(spec["labels"])
    data = data or (
        "acoustic scene clips in the TAU Urban Acoustic Scenes layout, "
        "prepared by `recipes/DCASE2019/dcase2019_prepare.py` of "
        "speechbrain-kd"
    )
    lines = [
        "---",
        "library_name: speechbrain",
        "pipeline_tag: audio-classification",
        "tags: [audio-classification, acoustic-scene-classification, "
        "knowledge-distillation, speechbrain]",
        "---",
        "",
        f"# {family} ({phase}) for acoustic scene classification",
        "",
        "## Task and data",
        "",
        f"Classifies a recording into one of {len(labels)} scenes: "
        f"{', '.join(labels)}. Input: raw audio at {spec['sample_rate']} Hz "
        f"with {config.get('in_channels', 1)} channel(s); other rates and "
        "channel counts are converted on loading. Trained on " + data + ".",
        "",
        "## Method",
        "",
        f"The `{phase}` phase of speechbrain-kd, which implements {CITATION}:",
        "a baseline CNN, specialists fine-tuned on the most confused pairs",
        "of scenes, and a student distilled from the soft labels (T = 2) of",
        "all of them.",
        "",
        "## Results",
        "",
    ]
    if results:
        n_clips = results.get("n_clips", "?")
        lines += [
            f"Accuracy on the held-out test split ({n_clips} clips): "
            f"**{100 * results['accuracy']:.2f} %** (checkpoint "
            f"`{checkpoint_name}`).",
            "",
            "| scene | accuracy |",
            "|---|---|",
        ]
        for label, acc in results.get("classwise_accuracy", {}).items():
            value = "n/a" if acc is None else f"{100 * acc:.1f} %"
            lines.append(f"| {label} | {value} |")
        lines.append("")
    else:
        lines += ["No test results were found for this checkpoint.", ""]
    if has_plot:
        lines += ["![confusion matrix](confusion_matrix.png)", ""]
    if complexity:
        sizes = complexity["parameter_bytes"]
        lines += [
            "## Size and cost",
            "",
            "| parameters | fp32 | fp16 | int8 | MACs per second of audio |",
            "|---|---|---|---|---|",
            f"| {complexity['parameters']:,} | {sizes['fp32'] / 1000:.1f} kB "
            f"| {sizes['fp16'] / 1000:.1f} kB | {sizes['int8'] / 1000:.1f} kB "
            f"| {complexity['macs'] / 1e6:.1f} M |",
            "",
            f"Counted with {complexity['counted_by']} at "
            f"{complexity['sample_rate']} Hz.",
            "",
        ]
    exported = (formats or {}).get("formats", {"torch": {}})
    if formats:
        lines += _formats_table(formats)
    lines += ["## Use", ""]
    if "torch" in exported:
        lines += [
            "```python",
            "# pip install speechbrain-kd  (provides the model classes)",
            "from speechbrain.inference.classifiers import EncoderClassifier",
            "",
            "model = EncoderClassifier.from_hparams(",
            '    source="<this repo or folder>", savedir="pretrained_model"',
            ")",
            'out_prob, score, index, label = model.classify_file("clip.wav")',
            "```",
            "",
            "`out_prob` holds log posteriors.",
            "",
        ]
    for name in ("onnx", "int8"):
        if name not in exported:
            continue
        file = exported[name]["file"]
        lines += [
            f"`{file}` ({name}) takes waveforms `[batch, time, channels]` "
            f"at {spec['sample_rate']} Hz with "
            f"{config.get('in_channels', 1)} channel(s) and gives "
            "posteriors; its metadata holds the labels. With ONNX Runtime "
            "alone:",
            "",
            "```python",
            "import json, onnxruntime, soundfile",
            "",
            f'session = onnxruntime.InferenceSession("{file}")',
            "meta = session.get_modelmeta().custom_metadata_map",
            'labels = json.loads(meta["labels"])',
            'wav, rate = soundfile.read("clip.wav", dtype="float32", '
            "always_2d=True)",
            f"# (resample to {spec['sample_rate']} Hz and adapt the channels "
            "first if needed)",
            'posteriors = session.run(None, {"waveform": wav[None]})[0][0]',
            "print(labels[posteriors.argmax()])",
            "```",
            "",
            "or, resampling and adapting channels for you, "
            "`speechbrain_kd.onnx_model.OnnxModel`.",
            "",
        ]
    lines += [
        "From the command line (any format; `--format` picks one in a "
        "folder holding several):",
        "`python -m speechbrain_kd.classify <folder> clip.wav --top_k 3`.",
        "",
        "## Safety",
        "",
        "Loading `hyperparams.yaml` runs code: HyperPyYAML's `!new:`,",
        "`!name:`, `!apply:` and `!module:` import and call the Python",
        "objects they name, so a hub model can run arbitrary code. Read the",
        "file before loading, e.g. download it alone with",
        '`huggingface_hub.hf_hub_download(repo_id, "hyperparams.yaml")` and',
        "run `speechbrain_kd.audit.audit_hyperparams(path)` (or",
        "`python -m speechbrain_kd.hub audit <repo or folder>`), which lists",
        "every callable and flags anything outside speechbrain,",
        "speechbrain_kd and torch.nn. This model names only those. The",
        "weights are plain state dicts, read by `torch.load` with",
        "`weights_only=True` (torch's default since 2.6).",
        "",
        "## Citation",
        "",
        CITATION,
        "",
    ]
    return "\n".join(lines)


def _formats_table(info):
    """The card's table of exported formats (from ``export.json``)."""

    def percent(value):
        return "n/a" if value is None else f"{100 * value:.1f} %"

    lines = [
        "## Formats",
        "",
        "| format | file | size on disk | parameters | MACs per s | "
        "accuracy | top-1 agreement | largest posterior difference |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, f in info["formats"].items():
        diff = f.get("max_abs_diff")
        lines.append(
            f"| {name} | `{f['file']}` | {f['bytes_on_disk'] / 1000:.1f} kB "
            f"| {f['parameter_bytes'] / 1000:.1f} kB ({f['precision']}"
            + (
                f"; {f['quantization_bytes'] / 1000:.1f} kB of scales and "
                "zero points"
                if f.get("quantization_bytes")
                else ""
            )
            + ") "
            f"| {f['macs'] / 1e6:.1f} M | {percent(f.get('accuracy'))} "
            f"| {percent(f.get('agreement'))} "
            f"| {'n/a' if diff is None else f'{diff:.2g}'} |"
        )
    lines.append("")
    if info.get("verified_on"):
        lines += [
            f"Accuracy and agreement with the trained PyTorch model "
            f"(accuracy {percent(info.get('pytorch_accuracy'))}) on the "
            f"clips of `{Path(info['verified_on']).name}`. Parameters are "
            "counted at the precision each file stores them in (the "
            "front end's fixed STFT window and mel filterbank excluded; "
            "quantization scales and zero points beside).",
            "",
        ]
    else:
        lines += ["Not verified on clips (export without `--verify`).", ""]
    return lines
