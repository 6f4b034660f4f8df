"""A recipe's presets: named settings for its phases, checked before any work.

A preset (``<hparams>/presets/<name>.yaml``) has a section per phase (the
keys of that phase's YAML), ``all`` (given to every phase that has the key)
and ``models`` (the options of each model family). A phase's settings come
from, in order, the preset's ``all``, the preset's section of the phase and
the command line (:func:`setting_sources`); :func:`phase_model` resolves its
model family and options the same way.

Nothing here is tied to one recipe: the phases and their YAMLs are given as
``{phase: YAML file name}`` in the recipe's ``hparams`` folder.
"""

from pathlib import Path

from speechbrain_kd.hparams_preview import (
    SettingError,
    check_settings,
    unknown_key_message,
    written_settings,
    yaml_keys,
    yaml_value,
)
from speechbrain_kd.models import family_overrides

# Sections of a preset besides the phases: "all" (every phase that has the
# key) and "models" (the options of each model family).
SHARED_SECTIONS = ("all", "models")
# What prepares the manifests all phases share: one value for all of them,
# so that no phase rebuilds the manifests from another split of the data.
DATA_SETTINGS = (
    "valid_ratio",
    "seed",
    "skip_bad_files",
    "train_subset",
    "split_setup_folder",
)


def phase_keys(hparams, phase_yamls):
    """``{phase: its top-level keys}`` for every phase YAML.

    Arguments
    ---------
    hparams : str or pathlib.Path
        The recipe's folder of phase YAMLs.
    phase_yamls : dict of str -> str
        ``{phase: its YAML's file name}``.

    Returns
    -------
    dict of str -> set of str

    Example
    -------
    >>> folder = Path(getfixture("tmpdir"))
    >>> _ = (folder / "a.yaml").write_text("lr: 0.1\\nseed: 1\\n")
    >>> {p: sorted(k) for p, k in phase_keys(folder, {"one": "a.yaml"}).items()}
    {'one': ['lr', 'seed']}
    """
    return {
        phase: yaml_keys(Path(hparams) / name)
        for phase, name in phase_yamls.items()
    }


def check_preset(preset, path, keys):
    """Refuse a preset section or key that no phase reads.

    Arguments
    ---------
    preset : dict
        The preset as read from its YAML.
    path : str or pathlib.Path
        Its file, for the message.
    keys : dict of str -> set of str
        ``{phase: its keys}`` (:func:`phase_keys`).

    Raises
    ------
    SettingError
        Naming the file, the section and the key at fault.

    Example
    -------
    >>> keys = {"baseline": {"batch_size", "valid_ratio"},
    ...         "distill": {"batch_size", "valid_ratio"}}
    >>> check_preset({"all": {"batch_size": 8}}, "p.yaml", keys)
    >>> check_preset({"distill": {"top_k_pairs": 2}}, "p.yaml", keys)
    Traceback (most recent call last):
    ...
    speechbrain_kd.hparams_preview.SettingError: p.yaml[distill]: \
'top_k_pairs' is not a setting of ...
    >>> check_preset({"distill": {"valid_ratio": 0.2}}, "p.yaml", keys)
    Traceback (most recent call last):
    ...
    speechbrain_kd.hparams_preview.SettingError: p.yaml[distill]: \
valid_ratio prepares the data that every phase shares: give it under 'all'
    """
    sections = (*SHARED_SECTIONS, *keys)
    for section, values in preset.items():
        if section not in sections:
            raise SettingError(
                f"{path}: unknown section {section!r}; a preset has "
                f"{', '.join(sections)}"
            )
        if not isinstance(values, dict):
            raise SettingError(f"{path}[{section}] must be a mapping")
        if section == "models":
            for family, options in values.items():
                try:
                    family_overrides(family, options)
                except ValueError as error:
                    raise SettingError(f"{path}[models]: {error}") from None
            continue
        known = (
            set().union(*keys.values()) if section == "all" else keys[section]
        )
        for key in values:
            if section != "all" and key in DATA_SETTINGS:
                raise SettingError(
                    f"{path}[{section}]: {key} prepares the data that every "
                    "phase shares: give it under 'all'"
                )
            if key not in known:
                where = "any phase" if section == "all" else section
                raise SettingError(
                    f"{path}[{section}]: "
                    + unknown_key_message(key, known, where)
                )


def load_preset(name, hparams, keys):
    """Read and check ``<hparams>/presets/<name>.yaml`` (:func:`check_preset`).

    Example
    -------
    >>> folder = Path(getfixture("tmpdir"))
    >>> (folder / "presets").mkdir()
    >>> _ = (folder / "presets" / "tiny.yaml").write_text("all: {lr: 0.1}\\n")
    >>> load_preset("tiny", folder, {"baseline": {"lr"}})
    {'all': {'lr': 0.1}}
    >>> load_preset("huge", folder, {"baseline": {"lr"}})
    Traceback (most recent call last):
    ...
    speechbrain_kd.hparams_preview.SettingError: unknown preset 'huge'; \
choose one of ['tiny']
    """
    path = Path(hparams) / "presets" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise SettingError(f"unknown preset {name!r}; choose one of {known}")
    with open(path, encoding="utf-8") as f:
        preset = yaml_value(f) or {}
    check_preset(preset, path, keys)
    return preset


def check_overrides(overrides, keys):
    """Refuse a command-line setting that no phase has (a typo, say).

    Example
    -------
    >>> check_overrides({"lr": 0.1}, {"baseline": {"lr"}})
    >>> check_overrides({"lrr": 0.1}, {"baseline": {"lr"}})
    Traceback (most recent call last):
    ...
    speechbrain_kd.hparams_preview.SettingError: --lrr: 'lrr' is not a \
setting of any phase; did you mean 'lr'?
    """
    known = set().union(*keys.values())
    for key in overrides:
        if key not in known:
            raise SettingError(
                f"--{key}: " + unknown_key_message(key, known, "any phase")
            )
    check_settings(overrides, "the command line")


def setting_sources(preset, phase, overrides):
    """Preset ``all``, the preset's section of ``phase``, the command line.

    Example
    -------
    >>> setting_sources({"all": {"lr": 1}}, "distill", {"lr": 2})
    ({'lr': 1}, {}, {'lr': 2})
    """
    return preset.get("all", {}), preset.get(phase, {}), overrides


def phase_model(yaml_file, preset, phase, overrides, own=(None, None)):
    """The model family and options of a phase (``None`` if it has none).

    The family is the YAML's ``model``, replaced by the preset's ``all``,
    the preset's section of the phase, then the command line's ``model``;
    the options are the preset's ``models`` entry of that family, updated
    by the sections' ``model_options``, then the command line's.

    Arguments
    ---------
    yaml_file : str or pathlib.Path
        The phase's YAML.
    preset : dict
        The preset (:func:`load_preset`).
    phase : str
        The phase's section in the preset.
    overrides : dict
        The command line's settings.
    own : tuple
        ``(family, options)`` of the phase's own (a student's), either
        ``None``; where one is given, they replace the command line's
        ``model`` and ``model_options``.

    Returns
    -------
    tuple of (str, dict), or None

    Raises
    ------
    SettingError
        An unknown family, or an option the family does not have.

    Example
    -------
    >>> path = Path(getfixture("tmpdir")) / "distill.yaml"
    >>> _ = path.write_text("model: logmel_cnn\\nmodel_options: {}\\n")
    >>> preset = {"models": {"logmel_cnn": {"n_mels": 40}}}
    >>> phase_model(path, preset, "distill", {})
    ('logmel_cnn', {'n_mels': 40})
    >>> phase_model(path, preset, "distill", {}, own=(None, {"n_mels": 32}))
    ('logmel_cnn', {'n_mels': 32})
    """
    if "model" not in yaml_keys(yaml_file):
        return None
    *preset_sections, command_line = setting_sources(preset, phase, overrides)
    family = written_settings(yaml_file).get("model")
    options = {}
    for source in preset_sections:
        family = source.get("model") or family
        options.update(source.get("model_options") or {})
    family = command_line.get("model") or family
    given = command_line.get("model_options") or {}
    own_family, own_options = own
    if own_family or own_options:
        family = own_family or family
        given = own_options or {}
    options = {**preset.get("models", {}).get(family, {}), **options, **given}
    try:
        family_overrides(family, options)
    except ValueError as error:
        raise SettingError(f"{phase}: {error}") from None
    return family, options
