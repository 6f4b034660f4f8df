"""The plain settings of a HyperPyYAML file, read without building objects.

A recipe sometimes needs a few settings before it can build its objects:
the data folder to prepare, or the number of classes the data holds, which
the models need when they are built. :func:`preview_hparams` applies the
overrides and resolves ``!ref`` exactly as ``load_hyperpyyaml`` does, but
leaves every ``!new:`` / ``!name:`` / ``!apply:`` object as ``None``.
"""

import yaml
from hyperpyyaml import resolve_references


class _PreviewLoader(yaml.SafeLoader):
    """A safe loader that reads any tagged node (an object) as ``None``."""


_PreviewLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


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
    >>> preview_hparams(path, {"k": 1})
    Traceback (most recent call last):
    ...
    KeyError: "Override 'k' not found in: ['n', 'm', 'layer']"
    """
    with open(hparams_file, encoding="utf-8") as fin:
        resolved = resolve_references(
            fin, overrides or {}, overrides_must_match=True
        )
    return yaml.load(resolved, Loader=_PreviewLoader) or {}
