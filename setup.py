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
    # The model-family and KD fragments (speechbrain_kd.hparams), in the
    # wheel and the sdist alike.
    package_data={"speechbrain_kd.hparams": ["models/*.yaml", "kd/*.yaml"]},
    # The pinned releases (constraints.txt) have wheels for 3.11 and newer.
    python_requires=">=3.11",
    install_requires=[
        "speechbrain>=1.1.2,<1.2",
        # torch and torchaudio are a pair: a torchaudio build only imports
        # beside a torch built with the same CUDA version, yet torchaudio
        # 2.11 declares just "torch>=2.11". torch 2.15.0 (CUDA 13.2) beside
        # torchaudio 2.11.x (CUDA 13.0) fails at "import torchaudio";
        # torch 2.11 to 2.14.1 beside torchaudio 2.11 work (tested: 2.14.1
        # with 2.11.1 here, 2.11.0 with 2.11.0 on the GPU machine).
        "torch>=2.11,<2.15",
        "torchaudio>=2.11,<2.12",
        # HyperPyYAML 1.2.3 fails to load files with ruamel.yaml 0.19.
        "hyperpyyaml>=1.2.3",
        "ruamel.yaml<0.19",
        "pyyaml",
        "numpy",
        # The linear reference row of every result table.
        "scikit-learn",
        # Paired comparisons: bootstrap(rng=...) is 1.15's.
        "scipy>=1.15",
        "soundfile",
        "matplotlib",
    ],
    extras_require={
        "hub": ["huggingface_hub"],
        # python -m speechbrain_kd.export --format onnx,int8: torch's
        # exporter (dynamo=True needs onnxscript), ONNX Runtime to run,
        # check and quantize the files.
        "export": ["onnx", "onnxruntime", "onnxscript"],
        "dev": [
            "pytest",
            "pytest-xdist",
            "ruff",
            "huggingface_hub",
            "onnx",
            "onnxruntime",
            "onnxscript",
        ],
    },
    license="Apache-2.0",
)
