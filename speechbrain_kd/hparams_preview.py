"""The plain settings of a HyperPyYAML file, read without building objects.

The one reader of settings: every caller that needs a setting before (or
without) building a YAML's objects reads it here, never from the YAML text.
A recipe sometimes needs a few settings before it can build its objects:
the data folder to prepare, or the number of classes the data holds, which
the models need when they are built. :func:`preview_hparams` applies the
overrides and resolves ``!ref`` exactly as ``load_hyperpyyaml`` does, but
leaves every ``!new:`` / ``!name:`` / ``!apply:`` object as ``None``;
:func:`written_settings` reads a file's own values as written, with every
tagged value (``!ref``, ``!PLACEHOLDER``, objects) as ``None``.
"""

import difflib

import ruamel.yaml
import yaml
from hyperpyyaml import resolve_references


class _PreviewLoader(ruamel.yaml.SafeLoader):
    """A safe loader that reads any tagged node (an object) as ``None``.

    ruamel's, as ``load_hyperpyyaml`` reads: YAML 1.2, so ``1e-4`` is a
    number and ``on`` a string, as they will be when the phase is built.
    A key given twice keeps its last value, as on a command line.
    """

    def check_mapping_key(self, node, key_node, mapping, key, value):
        """Let a later value of a key replace an earlier one."""
        return True


_PreviewLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def yaml_value(text):
    """Read YAML text as ``load_hyperpyyaml`` reads it, tags as ``None``.

    For settings written outside a HyperPyYAML file, such as a command
    line's overrides: ``--lr=1e-3`` is then the number the phase will use.

    Arguments
    ---------
    text : str or file
        YAML text.

    Returns
    -------
    object
        Plain values (numbers, strings, lists, dicts).

    Raises
    ------
    ruamel.yaml.YAMLError
        If ``text`` is not YAML.

    Example
    -------
    >>> yaml_value("lr: 1e-3\\npair: [metro, tram]\\ndebug: on\\n")
    {'lr': 0.001, 'pair': ['metro', 'tram'], 'debug': 'on'}
    >>> yaml_value("sample_rate: 8000\\nsample_rate: 4000\\n")
    {'sample_rate': 4000}
    """
    return yaml.load(text, Loader=_PreviewLoader)


def _read(stream):
    """Plain settings of a YAML stream (:func:`yaml_value`), ``{}`` if none."""
    return yaml_value(stream) or {}


def preview_hparams(hparams_file, overrides=None):
    """Return the top-level settings of ``hparams_file`` with ``overrides``.

    Arguments
    ---------
    hparams_file : str or pathlib.Path
    overrides : dict, optional
        As for ``load_hyperpyyaml``; a key the file lacks is a KeyError.

    Returns
    -------
    dict
        Plain values (numbers, strings, lists, dicts); objects are ``None``.

    Example
    -------
    >>> path = getfixture("tmpdir") + "/x.yaml"
    >>> _ = open(path, "w").write(
    ...     "n: 3\\nm: !ref <n>\\nlayer: !new:torch.nn.Linear [!ref <n>, 2]\\n")
    >>> preview_hparams(path, {"n": 4})
    {'n': 4, 'm': 4, 'layer': None}
    >>> preview_hparams(path, "n: 1e-4")["m"]
    0.0001
    >>> preview_hparams(path, {"k": 1})
    Traceback (most recent call last):
    ...
    KeyError: "Override 'k' not found in: ['n', 'm', 'layer']"
    """
    with open(hparams_file, encoding="utf-8") as fin:
        resolved = resolve_references(
            fin, overrides or {}, overrides_must_match=True
        )
    return _read(resolved)


def written_settings(hparams_file):
    """Return the top-level settings of ``hparams_file`` as written.

    Nothing is resolved, so a file with a ``!PLACEHOLDER`` reads too: the
    keys a file has and the defaults of its plain settings.

    Arguments
    ---------
    hparams_file : str or pathlib.Path

    Returns
    -------
    dict
        In the file's order; a tagged value (``!ref``, ``!PLACEHOLDER``,
        ``!new:`` ...) is ``None``.

    Example
    -------
    >>> path = getfixture("tmpdir") + "/x.yaml"
    >>> _ = open(path, "w").write(
    ...     "a: 1e-4  # lr\\nb: !PLACEHOLDER\\nc:\\n    d: !ref <a>\\n")
    >>> written_settings(path)
    {'a': 0.0001, 'b': None, 'c': {'d': None}}
    """
    with open(hparams_file, encoding="utf-8") as fin:
        return _read(fin)


class SettingError(ValueError):
    """A setting has a value its phase cannot use (names the setting).

    A ``ValueError``; recipes turn it into a one-line exit message.

    Example
    -------
    >>> try:
    ...     check_settings({"lr": 0}, "baseline.yaml")
    ... except SettingError as error:
    ...     print(error)
    baseline.yaml: lr=0 must be a number > 0
    """


def _count(minimum):
    def rule(value):
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            and (value >= minimum)
        )

    return rule, f"an integer, at least {minimum}"


def _number(low, low_open=False, high=None):
    def rule(value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        above = value > low if low_open else value >= low
        return above and (high is None or value < high)

    sign = ">" if low_open else ">="
    text = f"a number {sign} {low}" + (f" and < {high}" if high else "")
    return rule, text


def _or_none(checked):
    rule, text = checked
    return (lambda value: value is None or rule(value)), f"{text}, or null"


def _workers(value):
    return value == "auto" or _count(0)[0](value)


# What each common setting of the recipes' phases must be.
SETTING_RULES = {
    "number_of_epochs": _count(1),
    "batch_size": _count(1),
    "eval_batch_size": _count(1),
    "embedding_dim": _count(1),
    "n_channels": _count(1),
    "sample_rate": _count(1),
    "attention_heads": _count(1),
    "top_k_pairs": _count(1),
    "lr_decay_epochs": _count(1),
    "mixup_start_epoch": _count(0),
    "patience": _or_none(_count(1)),
    "patience_warmup": _or_none(_count(0)),
    "seed": _count(0),
    "n_classes": _or_none(_count(2)),
    "lr": _number(0, low_open=True),
    "center_lr": _number(0, low_open=True),
    "lr_decay_factor": _number(0, low_open=True),
    "weight_decay": _number(0),
    "center_loss_weight": _number(0),
    "mixup_alpha": _number(0),
    "gain_jitter_db": _number(0),
    "valid_ratio": _number(0, high=1),
    "crop_seconds": _or_none(_number(0, low_open=True)),
    "num_workers": (_workers, "an integer, at least 0, or auto"),
}


def check_settings(settings, source):
    """Refuse a setting whose value no phase can use, naming it.

    Only the keys of :data:`SETTING_RULES` that ``settings`` holds are
    checked, before anything is built or written, so that a typo such as
    ``--number_of_epochs=abc`` or ``--lr=-1`` stops the run at once with
    the setting's name instead of deep inside training.

    Arguments
    ---------
    settings : dict
        Plain settings (:func:`preview_hparams`, or command-line overrides).
    source : str
        Where they come from, for the message.

    Example
    -------
    >>> check_settings({"lr": 0.001, "num_workers": "auto"}, "baseline.yaml")
    >>> check_settings({"number_of_epochs": "abc"}, "baseline.yaml")
    Traceback (most recent call last):
    ...
    speechbrain_kd.hparams_preview.SettingError: ...: number_of_epochs='abc' ...
    """
    for key, value in settings.items():
        if key in SETTING_RULES:
            rule, text = SETTING_RULES[key]
            if not rule(value):
                raise SettingError(f"{source}: {key}={value!r} must be {text}")


def unknown_key_message(key, known, where):
    """Say that ``key`` is not a setting of ``where``, with the closest.

    Example
    -------
    >>> print(unknown_key_message("lrr", ["lr", "seed"], "x.yaml"))
    'lrr' is not a setting of x.yaml; did you mean 'lr'?
    """
    close = difflib.get_close_matches(key, sorted(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{key!r} is not a setting of {where}{hint}"


def yaml_keys(hparams_file):
    """The top-level keys of a HyperPyYAML file (:func:`written_settings`).

    Example
    -------
    >>> path = getfixture("tmpdir") + "/x.yaml"
    >>> _ = open(path, "w").write("a: 1\\nb: !PLACEHOLDER\\nc:\\n    d: 2\\n")
    >>> sorted(yaml_keys(path))
    ['a', 'b', 'c']
    """
    return set(written_settings(hparams_file))
