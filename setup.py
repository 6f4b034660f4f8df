"""Install speechbrain-kd: knowledge distillation for audio classification."""

from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="speechbrain-kd",
    version="0.1.0",
    description=(
        "Knowledge distillation for audio classification with SpeechBrain "
        "(teacher ensembles, specialists, soft-label caches, KD losses)"
    ),
    long_description=Path(__file__).with_name("README.md").read_text(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["speechbrain_kd", "speechbrain_kd.*"]),
    python_requires=">=3.9",
    install_requires=[
        "speechbrain>=1.1.2",
        "torch",
        "torchaudio",
        "hyperpyyaml",
        "numpy",
        "pandas",
        "soundfile",
        "matplotlib",
    ],
    extras_require={
        "hub": ["huggingface_hub"],
        "dev": [
            "pytest",
            "pytest-xdist",
            "ruff",
            "huggingface_hub",
        ],
    },
    license="Apache-2.0",
)
