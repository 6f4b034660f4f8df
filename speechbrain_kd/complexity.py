"""How big and how costly a model is: parameters, their memory, MACs.

The DCASE 2023-2025 task 1 limits for low-complexity scene classification
are at most 128 kB of parameter memory and 30 million multiply-accumulates
(MACs) for one second of audio. :func:`model_complexity` reports both for
any model of the library (an embedding model and a classifier taking
waveforms), with torch's own operator counter
(:class:`torch.utils.flop_counter.FlopCounterMode`: two FLOPs per MAC of
convolutions and matrix products), so that every phase, the pipeline's
summary and the model card give the same figures.
"""

import logging
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from speechbrain_kd.files import write_json_atomic

logger = logging.getLogger(__name__)

# Bytes per parameter at the precisions a deployed model is stored in.
BYTES_PER_PARAMETER = {"fp32": 4, "fp16": 2, "int8": 1}
# Written by every phase into its output folder.
COMPLEXITY_FILE = "complexity.json"
COUNTER = "torch.utils.flop_counter.FlopCounterMode (MACs = FLOPs / 2)"


def count_parameters(*modules):
    """Parameters of the modules, each tensor counted once.

    Example
    -------
    >>> layer = torch.nn.Linear(3, 2)
    >>> count_parameters(layer, layer)  # shared: counted once
    8
    """
    seen = {}
    for module in modules:
        for parameter in module.parameters():
            seen[id(parameter)] = parameter.numel()
    return sum(seen.values())


def model_complexity(
    embedding_model, classifier, sample_rate, n_channels=2, seconds=1.0
):
    """Parameters, their memory and the MACs of one clip of ``seconds``.

    The model is run once, in eval mode and without gradients, on a silent
    clip of ``seconds`` at ``sample_rate`` (the cost of a forward pass does
    not depend on the samples), and put back in the mode it was in.
    Torch's counter leaves out operations other than convolutions and
    matrix products (an STFT, normalisations, activations); the mel
    filterbank of the log-mel CNN, a matrix product, is counted.

    Arguments
    ---------
    embedding_model : torch.nn.Module
        Waveforms ``[B, T, C]`` -> embeddings.
    classifier : torch.nn.Module
        Embeddings -> logits.
    sample_rate : int
        The model's rate.
    n_channels : int
        Audio channels of the clip.
    seconds : float
        Clip length; DCASE's MAC limit is for one second.

    Returns
    -------
    dict
        ``parameters``, ``parameter_bytes`` (``fp32``, ``fp16``, ``int8``),
        ``macs``, ``seconds``, ``sample_rate`` and ``counted_by``.

    Example
    -------
    >>> from speechbrain_kd.models import LogMelCNN, SceneClassifier
    >>> embed = LogMelCNN(sample_rate=8000, n_mels=16, conv_channels=[4],
    ...     embedding_dim=8)
    >>> head = SceneClassifier(8, 3)
    >>> report = model_complexity(embed, head, 8000)
    >>> modules = (embed, head)
    >>> report["parameters"] == sum(
    ...     p.numel() for m in modules for p in m.parameters())
    True
    >>> report["parameter_bytes"]["int8"] == report["parameters"]
    True
    >>> report["macs"] > 0
    True
    """
    modes = [module.training for module in (embedding_model, classifier)]
    clip = torch.zeros(1, int(round(seconds * sample_rate)), n_channels)
    device = next(embedding_model.parameters(), torch.zeros(0)).device
    counter = FlopCounterMode(display=False)
    embedding_model.eval()
    classifier.eval()
    try:
        with torch.no_grad(), counter:
            classifier(embedding_model(clip.to(device)))
    finally:
        embedding_model.train(modes[0])
        classifier.train(modes[1])
    parameters = count_parameters(embedding_model, classifier)
    return {
        "parameters": parameters,
        "parameter_bytes": {
            precision: parameters * size
            for precision, size in BYTES_PER_PARAMETER.items()
        },
        "macs": counter.get_total_flops() // 2,
        "seconds": seconds,
        "sample_rate": sample_rate,
        "counted_by": COUNTER,
    }


def describe_complexity(report):
    """One line for logs and tables.

    Example
    -------
    >>> describe_complexity({"parameters": 1000, "macs": 2_000_000,
    ...     "parameter_bytes": {"fp32": 4000, "fp16": 2000, "int8": 1000},
    ...     "seconds": 1.0})
    '1,000 parameters (4.0/2.0/1.0 kB fp32/fp16/int8), 2.0 M MACs per 1 s'
    """
    sizes = report["parameter_bytes"]
    return (
        f"{report['parameters']:,} parameters ("
        + "/".join(f"{size / 1000:.1f}" for size in sizes.values())
        + " kB "
        + "/".join(sizes)
        + f"), {report['macs'] / 1e6:.1f} M MACs per {report['seconds']:g} s"
    )


# The settings of a phase that limit its model (null: no limit).
LIMIT_SETTINGS = ("max_params", "max_macs")


def check_limits(report, max_params=None, max_macs=None, what="the model"):
    """Refuse a model over a parameter or MAC limit, naming both figures.

    Arguments
    ---------
    report : dict
        :func:`model_complexity` of the model.
    max_params : int, optional
        Most parameters allowed (DCASE 2024 task 1: 128,000 at int8).
    max_macs : int, optional
        Most multiply-accumulates for ``report["seconds"]`` of audio
        (DCASE 2024 task 1: 30,000,000 per second).
    what : str
        How the error names the model.

    Raises
    ------
    ValueError
        ``max_params=128000: the student has 275,428 parameters, ...``;
        also for a limit that is not a positive integer.

    Example
    -------
    >>> report = {"parameters": 1500, "macs": 2_000_000, "seconds": 1.0}
    >>> check_limits(report, max_params=2000, max_macs=3_000_000)
    >>> check_limits(report, max_params=1000, what="the student")
    Traceback (most recent call last):
    ...
    ValueError: max_params=1000: the student has 1,500 parameters, 500 over...
    """
    measured = {"max_params": report["parameters"], "max_macs": report["macs"]}
    units = {
        "max_params": "parameters",
        "max_macs": f"MACs per {report['seconds']:g} s of audio",
    }
    limits = {"max_params": max_params, "max_macs": max_macs}
    for name, limit in limits.items():
        if limit is None:
            continue
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(
                f"{name}={limit!r}: give a positive whole number (or null "
                "for no limit)"
            )
        if measured[name] > limit:
            raise ValueError(
                f"{name}={limit}: {what} has {measured[name]:,} "
                f"{units[name]}, {measured[name] - limit:,} over the limit; "
                "choose a smaller model (model_options, or another family "
                "such as mobile_logmel_cnn) or raise the limit"
            )


def check_model_limits(settings, n_classes, what="the model"):
    """Build the model a phase's settings name; refuse it over their limits.

    Meant to run before anything is trained or written: the model is built
    from its family (:func:`speechbrain_kd.models.build_family`) with the
    phase's settings, measured by :func:`model_complexity` for one second
    of audio at the phase's rate, and held to ``max_params`` and
    ``max_macs``.

    Arguments
    ---------
    settings : dict
        A phase's plain settings: ``model``, ``model_options``,
        ``n_channels``, ``sample_rate``, ``embedding_dim``, ``pooling``,
        ``attention_heads`` and the limits (absent or ``None``: none).
    n_classes : int
        Scenes in the label set.
    what : str
        How the error names the model.

    Returns
    -------
    dict or None
        The complexity report; None when no limit is set.

    Example
    -------
    >>> settings = {"model": "logmel_cnn", "n_channels": 1,
    ...     "sample_rate": 8000, "embedding_dim": 8, "pooling": "avgmax",
    ...     "attention_heads": 1, "max_params": 100,
    ...     "model_options": {"n_mels": 16, "conv_channels": [4]}}
    >>> check_model_limits(settings, 3, "the student")
    Traceback (most recent call last):
    ...
    ValueError: max_params=100: the student has 146 parameters, 46 over ...
    >>> check_model_limits(dict(settings, max_params=None), 3) is None
    True
    """
    if all(settings.get(name) is None for name in LIMIT_SETTINGS):
        return None
    from speechbrain_kd.models.families import build_family

    modules = build_family(
        settings["model"],
        settings.get("model_options"),
        in_channels=settings["n_channels"],
        n_classes=n_classes,
        sample_rate=settings["sample_rate"],
        embedding_dim=settings.get("embedding_dim"),
        pooling=settings.get("pooling"),
        attention_heads=settings.get("attention_heads"),
    )
    report = model_complexity(
        modules["embedding_model"],
        modules["classifier"],
        settings["sample_rate"],
        settings["n_channels"],
    )
    check_limits(
        report,
        settings.get("max_params"),
        settings.get("max_macs"),
        what=what,
    )
    return report


def write_complexity(modules, sample_rate, n_channels, output_folder):
    """Log a phase's size and cost; write ``<output>/complexity.json``.

    Arguments
    ---------
    modules : dict
        With ``embedding_model`` and ``classifier`` (an ensemble's: all
        its teachers, since every teacher runs).
    sample_rate : int
    n_channels : int
    output_folder : str or pathlib.Path

    Returns
    -------
    dict
        The :func:`model_complexity` report that was written.

    Example
    -------
    >>> import json
    >>> from speechbrain_kd.models import LogMelCNN, SceneClassifier
    >>> modules = {"embedding_model": LogMelCNN(sample_rate=8000, n_mels=16,
    ...     conv_channels=[4], embedding_dim=8),
    ...     "classifier": SceneClassifier(8, 3)}
    >>> folder = getfixture("tmpdir")
    >>> report = write_complexity(modules, 8000, 2, folder)
    >>> json.load(open(folder + "/complexity.json")) == report
    True
    """
    report = model_complexity(
        modules["embedding_model"],
        modules["classifier"],
        sample_rate,
        n_channels,
    )
    logger.info("Model: %s", describe_complexity(report))
    write_json_atomic(Path(output_folder) / COMPLEXITY_FILE, report)
    return report
