"""Every YAML key is used, as SpeechBrain's own consistency test demands.

A key no one reads is a setting a user can change without effect.
"""

import re
from pathlib import Path

import pipeline
import pytest

import speechbrain_kd
from speechbrain_kd.hparams_preview import SettingError, yaml_keys
from speechbrain_kd.models.families import MODULES
from speechbrain_kd.presets import check_preset, phase_keys

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "DCASE2019"
LIBRARY = Path(speechbrain_kd.__file__).parent  # checkout or installed wheel
PHASE_YAMLS = sorted((RECIPE / "hparams").glob("*.yaml"))
FRAGMENTS = sorted((LIBRARY / "hparams").rglob("*.yaml"))
# The recipe's prepare_from_settings reads the data settings of a phase.
CODE = [
    RECIPE / "train.py",
    RECIPE / "dcase2019_prepare.py",
    *sorted(LIBRARY.rglob("*.py")),
]
# Keys SpeechBrain itself reads from hparams.
SPEECHBRAIN_KEYS = {"__set_seed", "modules", "opt_class", "checkpointer"}
# What build_family takes from a family's fragment (hparams/models/).
FAMILY_KEYS = set(MODULES)


def pipeline_keys():
    """``{phase: its keys}`` as the pipeline reads them."""
    return phase_keys(pipeline.HPARAMS, pipeline.PHASE_YAMLS)


def top_level_keys(path):
    # The pipeline's own reading of a YAML's keys (it filters presets by it).
    return yaml_keys(path)


def is_used(key, yaml_text, code_text):
    refs = re.search(rf"<{key}(\[|>)", yaml_text)
    # Read as a setting: hparams["k"], hparams.get("k"), hparams.k,
    # getattr(<...>hparams, "k"), or the same on the previewed settings.
    # Any other quoted "k" does not count.
    q = "[\"']"
    in_code = re.search(
        rf"(hparams|settings)\[{q}{key}{q}\]"
        rf"|(hparams|settings)\.get\({q}{key}{q}"
        rf"|hparams\.{key}\b"
        rf"|getattr\([\w.]*hparams, {q}{key}{q}",
        code_text,
    )
    return key in SPEECHBRAIN_KEYS | FAMILY_KEYS or refs or in_code


@pytest.mark.parametrize("path", PHASE_YAMLS + FRAGMENTS, ids=lambda p: p.name)
def test_every_key_is_used(path):
    yaml_text = path.read_text(encoding="utf-8")
    code_text = "\n".join(p.read_text(encoding="utf-8") for p in CODE)
    unused = [
        key
        for key in top_level_keys(path)
        if not is_used(key, yaml_text, code_text)
    ]
    assert not unused, f"{path.name}: keys nobody reads: {unused}"


@pytest.mark.parametrize(
    "path", sorted((RECIPE / "hparams" / "presets").glob("*.yaml"))
)
def test_presets_name_only_settings_a_phase_reads(path):
    # The pipeline's own check: it refuses such a preset before any work.
    import yaml

    check_preset(yaml.safe_load(path.read_text()), path, pipeline_keys())


@pytest.mark.parametrize(
    "preset, message",
    [
        ({"all": {"numbr_of_epochs": 3}}, "did you mean 'number_of_epochs'"),
        ({"distill": {"top_k_pairs": 2}}, "not a setting of distill"),
        ({"models": {"cnn14": {}}}, "unknown model family 'cnn14'"),
        ({"models": {"logmel_cnn": {"pool_size": 2}}}, "no setting"),
        ({"phase_two": {}}, "unknown section 'phase_two'"),
    ],
)
def test_a_preset_key_no_phase_reads_is_refused(preset, message):
    with pytest.raises(SettingError, match=message):
        check_preset(preset, "p.yaml", pipeline_keys())
