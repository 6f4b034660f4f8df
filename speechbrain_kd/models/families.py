"""Model families by name: one HyperPyYAML fragment each, package data.

A family is a fragment ``speechbrain_kd/hparams/models/<name>.yaml`` (see
:mod:`speechbrain_kd.hparams`) that builds an
``embedding_model`` and a ``classifier`` (see CONTRIBUTING.md) from its own
settings. Phases pick a family by name (``model: logmel_cnn``), so teachers
and students of different families mix, and adding a family is adding a
fragment and a module, not editing the phases.

The settings every phase passes (:data:`COMMON_SETTINGS`: channels, classes,
sample rate, embedding size, pooling) go to a family that declares them;
``options`` change the family's own settings and must be among them.
"""

from pathlib import Path

from hyperpyyaml import load_hyperpyyaml

from speechbrain_kd.hparams import fragments_folder
from speechbrain_kd.hparams_preview import written_settings

COMMON_SETTINGS = (
    "in_channels",
    "n_classes",
    "sample_rate",
    "embedding_dim",
    "pooling",
    "attention_heads",
)
MODULES = ("embedding_model", "classifier")


def known_families(folder=None):
    """Return the names of the model families (the fragments of ``folder``).

    Arguments
    ---------
    folder : str or pathlib.Path, optional
        Where the fragments are; default: the package's own.

    Returns
    -------
    list of str

    Example
    -------
    >>> known_families()
    ['logmel_cnn', 'mobile_logmel_cnn', 'raw_waveform_cnn']
    """
    folder = Path(folder) if folder is not None else fragments_folder("models")
    return sorted(path.stem for path in folder.glob("*.yaml"))


def family_settings(name, folder=None):
    """Return the top-level settings a family's fragment declares.

    Arguments
    ---------
    name : str
        A family of :func:`known_families`.
    folder : str or pathlib.Path, optional

    Returns
    -------
    list of str
        Without the two modules.

    Example
    -------
    >>> "n_mels" in family_settings("logmel_cnn")
    True
    >>> family_settings("transformer")
    Traceback (most recent call last):
    ...
    ValueError: unknown model family 'transformer'; known: ...
    """
    keys = written_settings(fragment_path(name, folder))
    return [key for key in keys if key not in MODULES]


def fragment_path(name, folder=None):
    """Return the fragment file of family ``name``, or fail listing them.

    Example
    -------
    >>> fragment_path("raw_waveform_cnn").name
    'raw_waveform_cnn.yaml'
    """
    folder = Path(folder) if folder is not None else fragments_folder("models")
    known = known_families(folder)
    if name not in known:
        raise ValueError(
            f"unknown model family {name!r}; known: {', '.join(known)} "
            f"(the fragments of {folder})"
        )
    return folder / f"{name}.yaml"


def build_family(name, options=None, folder=None, **common):
    """Build the ``embedding_model`` and ``classifier`` of a family.

    Arguments
    ---------
    name : str
        A family of :func:`known_families` (``raw_waveform_cnn``,
        ``logmel_cnn``, ...).
    options : dict, optional
        Values of the family's own settings (``{"n_mels": 40}``); a setting
        the family lacks is an error that lists the ones it has.
    folder : str or pathlib.Path, optional
        Where the fragments are; default: the package's own.
    **common
        The settings every phase passes (:data:`COMMON_SETTINGS`); each goes
        to the family if its fragment declares it (a raw-waveform model has
        no sample rate), and ``None`` keeps the fragment's value.

    Returns
    -------
    dict
        ``{"embedding_model": module, "classifier": module}``.

    Example
    -------
    >>> import torch
    >>> model = build_family(
    ...     "logmel_cnn", options={"n_mels": 16, "conv_channels": [8]},
    ...     in_channels=1, n_classes=3, sample_rate=8000, embedding_dim=8)
    >>> emb = model["embedding_model"](torch.randn(2, 8000))
    >>> model["classifier"](emb).shape
    torch.Size([2, 3])
    >>> build_family("logmel_cnn", options={"block_channels": [8]})
    Traceback (most recent call last):
    ...
    ValueError: model family 'logmel_cnn' has no setting 'block_channels'...
    """
    overrides = family_overrides(name, options, folder, **common)
    path = fragment_path(name, folder)
    with open(path, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    return {module: hparams[module] for module in MODULES}


def family_overrides(name, options=None, folder=None, **common):
    """Check a family's name and options; return the fragment's overrides.

    Arguments are those of :func:`build_family`; nothing is built, so a
    recipe can check its settings before it prepares any data.

    Returns
    -------
    dict

    Example
    -------
    >>> family_overrides("raw_waveform_cnn", {"pool_size": 2},
    ...                  sample_rate=8000, n_classes=4)
    {'n_classes': 4, 'pool_size': 2}
    >>> family_overrides("raw_waveform_cnn", {"n_mels": 40})
    Traceback (most recent call last):
    ...
    ValueError: model family 'raw_waveform_cnn' has no setting 'n_mels' ...
    """
    unknown = set(common) - set(COMMON_SETTINGS)
    if unknown:
        raise TypeError(f"unknown common settings {sorted(unknown)}")
    settings = family_settings(name, folder)
    overrides = {
        key: value
        for key, value in common.items()
        if value is not None and key in settings
    }
    if options is not None and not isinstance(options, dict):
        raise ValueError(
            f"the options of model family {name!r} must be a mapping of its "
            f"settings, got {options!r}"
        )
    for key, value in (options or {}).items():
        if key not in settings or key in COMMON_SETTINGS:
            own = [s for s in settings if s not in COMMON_SETTINGS]
            raise ValueError(
                f"model family {name!r} has no setting {key!r} of its own; "
                f"it has {', '.join(own)} ({fragment_path(name, folder)})"
            )
        overrides[key] = value
    return overrides


def family_module(family, module):
    """Return one module of a :func:`build_family` result (for YAML).

    Example
    -------
    >>> family_module({"classifier": "clf"}, "classifier")
    'clf'
    """
    return family[module]
