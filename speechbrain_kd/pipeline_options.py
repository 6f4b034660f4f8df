"""The command-line options of the pipeline and the values they take.

``pipeline.py`` passes the options it does not know itself to its phases:
:func:`parse_extra` splits them into SpeechBrain's run options
(:data:`speechbrain_kd.phase_runner.RUN_OPTIONS`) and settings read as
YAML, as the phases read them; the rest are ``argparse`` types.
"""

import argparse

import ruamel.yaml

from speechbrain_kd.hparams_preview import yaml_value
from speechbrain_kd.phase_runner import RUN_OPTIONS


def parse_extra(extra):
    """Split the pass-through options into hparams and run options.

    The run options are SpeechBrain's own (``RunOptions``), given to every
    phase as they are.

    Example
    -------
    >>> parse_extra(["--lr=0.1", "--max_grad_norm=5", "--test_only"])
    ({'lr': 0.1}, ['--max_grad_norm=5', '--test_only'])
    """
    overrides, run_opts = {}, []
    for item in extra:
        if not item.startswith("--"):
            raise SystemExit(f"unexpected argument {item!r}")
        key, _, value = item[2:].partition("=")
        if key in RUN_OPTIONS:
            run_opts.append(item)
        elif not value:
            raise SystemExit(f"give a value: --{key}=<value>")
        else:
            overrides[key] = yaml_value(value)
    return overrides, run_opts


def run_option(run_opts, name):
    """The value of ``--name=value`` among the run options, or None.

    Example
    -------
    >>> run_option(["--precision=fp16", "--device=cuda:1"], "device")
    'cuda:1'
    """
    values = [
        value
        for key, _, value in (item[2:].partition("=") for item in run_opts)
        if key == name
    ]
    return values[-1] if values else None


def count_at_least(low):
    """An argparse type: an integer of at least ``low``.

    Example
    -------
    >>> count_at_least(2)("5")
    5
    >>> count_at_least(2)("1")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: give an integer >= 2, not '1'
    """

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(
                f"give an integer >= {low}, not {text!r}"
            )
        return value

    return parse


def seed_list(text):
    """Parse ``--seeds=1,2,3``.

    Example
    -------
    >>> seed_list("1, 2,3")
    [1, 2, 3]
    >>> seed_list("")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: give one seed or more, e.g. --seeds=1,2,3
    >>> seed_list("1,2,1")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: give distinct seeds: 1 is repeated in '1,2,1'
    """
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of integers: {text!r}"
        ) from None
    if not seeds:
        raise argparse.ArgumentTypeError(
            "give one seed or more, e.g. --seeds=1,2,3"
        )
    twice = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if twice:
        raise argparse.ArgumentTypeError(
            f"give distinct seeds: {', '.join(map(str, twice))} "
            f"{'is' if len(twice) == 1 else 'are'} repeated in {text!r}"
        )
    return seeds


def export_formats(text):
    """Parse ``--export_formats=onnx,int8`` (checked before any training).

    Example
    -------
    >>> export_formats("int8,onnx")
    ['onnx', 'int8']
    >>> export_formats("tflite")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: unknown export format(s) ['tflite']; ...
    """
    from speechbrain_kd.export_formats import parse_formats

    try:
        return parse_formats(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def yes_or_no(text):
    """Parse a command-line boolean (``True``/``False``, as YAML reads it).

    Example
    -------
    >>> yes_or_no("False"), yes_or_no("true")
    (False, True)
    >>> yes_or_no("maybe")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: give True or False, not 'maybe'
    """
    value = yaml_value(text)
    if not isinstance(value, bool):
        raise argparse.ArgumentTypeError(f"give True or False, not {text!r}")
    return value


def yaml_mapping(text):
    """Parse a command-line YAML mapping (``"{n_mels: 40}"``).

    Example
    -------
    >>> yaml_mapping("{n_mels: 40, f_max: 8e3}")
    {'n_mels': 40, 'f_max': 8000.0}
    >>> yaml_mapping("[40]")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: not a mapping: '[40]'
    """
    try:
        value = yaml_value(text)
    except ruamel.yaml.YAMLError as error:
        raise argparse.ArgumentTypeError(f"not YAML: {error}") from None
    if value is not None and not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"not a mapping: {text!r}")
    return value
