"""Describe a model in a file and rebuild it, without pickles.

``model_spec.json`` records, for each module of a trained phase, its class
and constructor arguments (``module.config``). Only classes of the
``speechbrain_kd`` package can be rebuilt: a spec is read from disk and must
not name arbitrary code.
"""

import importlib
import json
import os
import tempfile
from pathlib import Path

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
    return {
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "config": json.loads(json.dumps(module.config)),
    }


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
    path = spec["class"]
    if not path.startswith(ALLOWED_PREFIX):
        raise ValueError(
            f"refusing to build {path!r}: model specs may only name "
            f"classes of {ALLOWED_PREFIX[:-1]}"
        )
    module_name, _, class_name = path.rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(**spec.get("config", {}))


def write_model_spec(
    path, embedding_model, classifier, sample_rate, labels, **extra
):
    """Write ``model_spec.json`` atomically.

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
        "labels": list(labels),
        **extra,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(spec, f, indent=2)
    os.replace(tmp, path)


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
    with open(path, encoding="utf-8") as f:
        spec = json.load(f)
    needed = ("embedding_model", "classifier", "sample_rate", "labels")
    missing = [key for key in needed if key not in spec]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}")
    return spec
