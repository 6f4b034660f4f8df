"""Describe a model in a file and rebuild it, without pickles.

``model_spec.json`` records, for each module of a trained phase, its class
and constructor arguments (``module.config``). Only classes of the
``speechbrain_kd`` package can be rebuilt: a spec is read from disk and must
not name arbitrary code.
"""

import importlib
import json

import torch

from speechbrain_kd.files import write_text_atomic

ALLOWED_PREFIX = "speechbrain_kd."


def module_spec(module):
    """Return ``{"class": dotted path, "config": constructor arguments}``.

    Arguments
    ---------
    module : torch.nn.Module
        A module with a ``config`` attribute.

    Returns
    -------
    dict

    Example
    -------
    >>> from speechbrain_kd.models import SceneClassifier
    >>> spec = module_spec(SceneClassifier(4, 2))
    >>> spec["class"]
    'speechbrain_kd.models.classifier.SceneClassifier'
    >>> spec["config"]
    {'input_size': 4, 'n_classes': 2}
    """
    if not hasattr(module, "config"):
        raise TypeError(
            f"{type(module).__name__} records no constructor arguments "
            "(.config): it cannot be described in a model spec"
        )
    cls = type(module)
    try:
        config = json.loads(json.dumps(module.config))
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"the config of {cls.__name__} is not plain JSON: {error}"
        ) from error
    return {"class": f"{cls.__module__}.{cls.__qualname__}", "config": config}


def build_module(spec):
    """Rebuild a module from :func:`module_spec` output.

    Arguments
    ---------
    spec : dict

    Returns
    -------
    torch.nn.Module

    Example
    -------
    >>> build_module(
    ...     {"class": "speechbrain_kd.models.SceneClassifier",
    ...      "config": {"input_size": 4, "n_classes": 2}}
    ... ).linear.weight.shape
    torch.Size([2, 4])
    >>> build_module({"class": "os.system", "config": {}})
    Traceback (most recent call last):
    ...
    ValueError: refusing to build 'os.system': ...
    """
    if not isinstance(spec, dict) or not isinstance(spec.get("class"), str):
        raise ValueError(
            f"a module spec is a dict with a 'class' string, got {spec!r}"
        )
    path = spec["class"]
    config = spec.get("config", {})
    if not isinstance(config, dict):
        raise ValueError(f"the config of {path!r} must be a dict: {config!r}")
    if not path.startswith(ALLOWED_PREFIX):
        raise ValueError(
            f"refusing to build {path!r}: model specs may only name "
            f"classes of {ALLOWED_PREFIX[:-1]}"
        )
    module_name, _, class_name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"cannot find class {path!r}: {error}") from error
    # The name may still lead out of the package (an imported module or
    # function): only speechbrain_kd's own torch modules are built.
    if not (
        isinstance(cls, type)
        and issubclass(cls, torch.nn.Module)
        and cls.__module__.startswith(ALLOWED_PREFIX)
    ):
        raise ValueError(
            f"refusing to build {path!r}: not a torch module class of "
            f"{ALLOWED_PREFIX[:-1]}"
        )
    try:
        return cls(**config)
    except TypeError as error:
        raise ValueError(
            f"cannot build {path!r} from config {config}: {error}"
        ) from error


def write_model_spec(
    path, embedding_model, classifier, sample_rate, labels, **extra
):
    """Write ``model_spec.json`` atomically (temporary file, then replace).

    The layout is the one of every phase's ``save/model_spec.json``
    (CONTRIBUTING.md): ``{"embedding_model": spec, "classifier": spec,
    "sample_rate": int, "labels": [...], "phase": str, ...}``.

    Arguments
    ---------
    path : str or pathlib.Path
    embedding_model, classifier : torch.nn.Module
    sample_rate : int
    labels : list of str
        Class names in output order.
    **extra
        More JSON values (the phase name, say).

    Example
    -------
    >>> from speechbrain_kd.models import SceneClassifier
    >>> path = getfixture("tmpdir") + "/model_spec.json"
    >>> clf = SceneClassifier(4, 2)
    >>> write_model_spec(path, clf, clf, 16000, ["a", "b"], phase="x")
    >>> read_model_spec(path)["labels"]
    ['a', 'b']
    """
    spec = {
        "embedding_model": module_spec(embedding_model),
        "classifier": module_spec(classifier),
        "sample_rate": int(sample_rate),
        "labels": [str(label) for label in labels],
        **extra,
    }
    text = json.dumps(spec, indent=2)  # fails before any file is touched
    write_text_atomic(path, text + "\n")


def read_model_spec(path):
    """Read and check ``model_spec.json``.

    Arguments
    ---------
    path : str or pathlib.Path

    Returns
    -------
    dict

    Example
    -------
    >>> path = getfixture("tmpdir") + "/broken.json"
    >>> _ = open(path, "w").write('{"labels": []}')
    >>> read_model_spec(path)
    Traceback (most recent call last):
    ...
    ValueError: ...broken.json lacks embedding_model, classifier, sample_rate
    """
    try:
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(spec, dict):
        raise ValueError(f"{path} must hold a JSON object")
    needed = ("embedding_model", "classifier", "sample_rate", "labels")
    missing = [key for key in needed if key not in spec]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}")
    for name in ("embedding_model", "classifier"):
        module = spec[name]
        if not isinstance(module, dict) or not isinstance(
            module.get("class"), str
        ):
            raise ValueError(f"{path}: {name} needs a 'class' string")
    if not isinstance(spec["sample_rate"], int) or spec["sample_rate"] < 1:
        raise ValueError(
            f"{path}: sample_rate must be a positive integer, got "
            f"{spec['sample_rate']!r}"
        )
    labels = spec["labels"]
    if not isinstance(labels, list) or not all(
        isinstance(label, str) for label in labels
    ):
        raise ValueError(f"{path}: labels must be a list of strings")
    if len(set(labels)) != len(labels):
        raise ValueError(f"{path}: labels are not unique: {labels}")
    return spec
