"""The package works installed: its YAML fragments are package data.

Model families and KD losses are found through ``importlib.resources``
inside the imported package (a wheel has nothing else), the built sdist and
wheel hold them, and no recipe YAML reaches outside its recipe folder.
"""

import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from importlib import resources
from pathlib import Path

import pytest
import torch

import speechbrain_kd
from speechbrain_kd.hparams import fragments_folder
from speechbrain_kd.losses import DistillationLoss, build_kd_loss
from speechbrain_kd.models import build_family, known_families
from tests.conftest import ROOT

PACKAGE = Path(speechbrain_kd.__file__).parent
SOURCE_FRAGMENTS = ROOT / "speechbrain_kd" / "hparams"


@pytest.mark.parametrize(
    "kind, names",
    [
        ("models", ["logmel_cnn", "mobile_logmel_cnn", "raw_waveform_cnn"]),
        ("kd", ["cpjku", "published"]),
    ],
)
def test_fragments_are_found_inside_the_imported_package(kind, names):
    folder = fragments_folder(kind)
    assert folder == Path(resources.files("speechbrain_kd") / "hparams" / kind)
    assert folder.parent.parent == PACKAGE
    assert sorted(path.stem for path in folder.glob("*.yaml")) == names


@pytest.mark.parametrize("family", known_families())
def test_every_family_builds_by_name(family):
    modules = build_family(
        family, {}, in_channels=2, n_classes=4, sample_rate=16000
    )
    embeddings = modules["embedding_model"](torch.randn(2, 16000, 2))
    assert modules["classifier"](embeddings).shape == (2, 4)


@pytest.mark.parametrize("name", ["cpjku", "published"])
def test_every_kd_fragment_builds_by_name(name):
    loss = build_kd_loss(name, temperature=3.0)
    assert isinstance(loss, DistillationLoss)
    assert loss.config["temperature"] == 3.0


def test_a_setting_the_kd_fragment_lacks_is_refused():
    with pytest.raises(KeyError, match="t2_scale"):
        build_kd_loss("cpjku", t2_scale=True)


def test_no_recipe_yaml_includes_a_file_outside_its_recipe():
    # A path out of recipes/<task>/ (to the package's fragments, say) only
    # resolves in a source checkout, not from a copy of recipes/.
    outside = []
    for path in sorted((ROOT / "recipes").rglob("*.yaml")):
        recipe = path.relative_to(ROOT / "recipes").parts[0]
        text = path.read_text(encoding="utf-8")
        for target in re.findall(r"!include:(\S+)", text):
            resolved = (path.parent / target).resolve()
            if not resolved.is_relative_to(ROOT / "recipes" / recipe):
                outside.append(f"{path.relative_to(ROOT)}: {target}")
    assert not outside, outside


@pytest.mark.skipif(
    not (ROOT / "setup.py").is_file(), reason="not a source checkout"
)
def test_the_sdist_and_its_wheel_hold_the_fragments(tmp_path):
    # Built from a copy of what setup.py reads, so that no stale build/
    # folder of the checkout leaks into the wheel and nothing is written
    # there; the wheel is built from the sdist, as `python -m build` does,
    # in pip's isolated build environment (pyproject.toml's setuptools: a
    # venv's own setuptools 65 cannot build wheels without `wheel`).
    pytest.importorskip("setuptools")  # for setup.py sdist
    source = tmp_path / "source"
    source.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source)
    shutil.copytree(
        ROOT / "speechbrain_kd",
        source / "speechbrain_kd",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    expected = sorted(
        path.relative_to(ROOT).as_posix()
        for path in SOURCE_FRAGMENTS.rglob("*.yaml")
    )
    assert len(expected) >= 5
    dist = tmp_path / "dist"
    quiet = {"capture_output": True, "text": True, "check": True}
    subprocess.run(
        [sys.executable, "setup.py", "-q", "sdist", "-d", str(dist)],
        cwd=source,
        **quiet,
    )
    (sdist,) = dist.glob("*.tar.gz")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet"]
        + ["--disable-pip-version-check", "-w", str(dist), str(sdist)],
        **quiet,
    )
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        in_wheel = set(archive.namelist())
    assert [name for name in expected if name not in in_wheel] == []
    with tarfile.open(sdist) as archive:
        in_sdist = {name.partition("/")[2] for name in archive.getnames()}
    assert [name for name in expected if name not in in_sdist] == []
