"""Every YAML key is used, as SpeechBrain's own consistency test demands.

A key no one reads is a setting a user can change without effect.
"""

import re
from pathlib import Path

import pytest
from pipeline import yaml_keys

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "DCASE2019"
PHASE_YAMLS = sorted((RECIPE / "hparams").glob("*.yaml"))
FRAGMENTS = sorted((ROOT / "hparams").rglob("*.yaml"))
CODE = [RECIPE / "train.py", *sorted((ROOT / "speechbrain_kd").rglob("*.py"))]
# Keys SpeechBrain itself reads from hparams.
SPEECHBRAIN_KEYS = {"__set_seed", "modules", "opt_class", "checkpointer"}


def top_level_keys(path):
    # The pipeline's own reading of a YAML's keys (it filters presets by it).
    return yaml_keys(path)


def is_used(key, yaml_text, code_text):
    refs = re.search(rf"<{key}(\[|>)", yaml_text)
    in_code = re.search(
        rf"""hparams\[["']{key}["']\]|hparams\.{key}\b|"""
        rf"""hparams\.get\(["']{key}["']|["']{key}["']""",
        code_text,
    )
    return key in SPEECHBRAIN_KEYS or refs or in_code


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
def test_preset_keys_exist_in_some_phase(path):
    import yaml

    preset = yaml.safe_load(path.read_text())
    phase_keys = {p.stem: set(top_level_keys(p)) for p in PHASE_YAMLS}
    all_keys = set().union(*phase_keys.values())
    for section, values in preset.items():
        known = all_keys if section == "all" else phase_keys[section]
        unknown = set(values or {}) - known
        assert not unknown, f"{path.name}[{section}]: unknown {unknown}"
