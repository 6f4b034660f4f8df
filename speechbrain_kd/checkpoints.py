"""Find and load the trained model of a phase's output folder.

Every phase of a recipe (``train.py hparams/<phase>.yaml``) leaves an output
folder with ``save/model_spec.json`` (how to rebuild the two modules),
``save/label_encoder.txt`` and SpeechBrain checkpoints whose metadata holds
the validation ``accuracy``. Teachers, specialist initialisation, export and
the command-line classifier all load models through this module, so there is
one definition of "the best model of a phase".
"""

import dataclasses
import logging
import os
import shutil
from pathlib import Path

import torch
from speechbrain.utils.checkpoints import (
    CKPT_PREFIX,
    METAFNAME,
    Checkpointer,
)
from speechbrain.utils.distributed import ddp_barrier, if_main_process

from speechbrain_kd.models.spec import build_module, read_model_spec

logger = logging.getLogger(__name__)

MODEL_SPEC_FILE = "model_spec.json"
LABEL_ENCODER_FILE = "label_encoder.txt"
MODEL_MODULES = ("embedding_model", "classifier")
# A checkpoint's meta file while its parameter files are still being written.
PENDING_METAFNAME = METAFNAME + ".pending"


class AtomicCheckpointer(Checkpointer):
    """SpeechBrain's ``Checkpointer``; a checkpoint exists whole or not at all.

    SpeechBrain 1.1.2 writes a checkpoint's meta file (``CKPT.yaml``, which
    marks a folder as a checkpoint) before its parameter files, so a run
    killed in between leaves a checkpoint that recovery picks and then
    fails on (``KeyError`` of the first missing module). Here the meta file
    is written under another name and renamed once every parameter file is
    written: a killed save leaves a folder that recovery ignores (and that
    the next recovery removes), and the run resumes from the checkpoint
    before it.

    Example
    -------
    >>> folder = getfixture("tmpdir")
    >>> model = torch.nn.Linear(1, 1)
    >>> ckpt = AtomicCheckpointer(folder, {"model": model})
    >>> _ = ckpt.save_checkpoint(name="first")
    >>> def killed_midway(obj, path):
    ...     raise KeyboardInterrupt  # e.g. SIGINT while saving
    >>> ckpt.add_recoverable("late", object(), custom_save_hook=killed_midway)
    >>> try:
    ...     _ = ckpt.save_checkpoint(name="second")
    ... except KeyboardInterrupt:
    ...     pass
    >>> [c.path.name for c in ckpt.list_checkpoints()]
    ['CKPT+first']
    """

    def _save_checkpoint_metafile(
        self, fpath, meta_to_include=None, end_of_epoch=True
    ):
        pending = Path(fpath).with_name(PENDING_METAFNAME)
        meta_to_include = meta_to_include or {}
        return super()._save_checkpoint_metafile(
            pending, meta_to_include, end_of_epoch
        )

    def save_checkpoint(self, *args, **kwargs):
        """Save as ``Checkpointer.save_checkpoint`` does, then mark it whole.

        Returns the ``Checkpoint`` (``None`` on processes other than the
        main one), as SpeechBrain does.
        """
        checkpoint = super().save_checkpoint(*args, **kwargs)
        ddp_barrier()  # every process has written its files
        if checkpoint is not None:
            os.replace(
                checkpoint.path / PENDING_METAFNAME,
                checkpoint.path / METAFNAME,
            )
        return checkpoint

    def recover_if_possible(self, *args, **kwargs):
        """Remove the folders of killed saves, then recover as SpeechBrain."""
        if if_main_process():
            for folder in Path(self.checkpoints_dir).glob(f"{CKPT_PREFIX}+*"):
                if (folder / PENDING_METAFNAME).exists() and not (
                    folder / METAFNAME
                ).exists():
                    logger.warning("Removing unfinished checkpoint %s", folder)
                    shutil.rmtree(folder)
        ddp_barrier()
        return super().recover_if_possible(*args, **kwargs)


@dataclasses.dataclass
class TrainedModel:
    """The two modules of a trained phase and what describes them.

    Attributes
    ----------
    embedding_model : torch.nn.Module
        Waveforms ``[B, T(, C)]`` -> embeddings ``[B, E]``.
    classifier : torch.nn.Module
        Embeddings -> logits ``[B, n_classes]``.
    labels : list of str
        Class names in output order.
    sample_rate : int
        The rate the model takes.
    spec : dict
        The content of ``model_spec.json``.
    checkpoint : pathlib.Path
        The checkpoint folder the weights came from.

    Example
    -------
    >>> from speechbrain_kd.models import RawWaveformCNN, SceneClassifier
    >>> emb = RawWaveformCNN(first_conv_channels=8, first_conv_kernel=8,
    ...     block_channels=[8], final_channels=8, embedding_dim=4)
    >>> model = TrainedModel(emb, SceneClassifier(4, 2), ["park", "tram"],
    ...     8000, {}, Path("CKPT+x"))
    >>> model.eval()(torch.randn(3, 8000, 2)).shape
    torch.Size([3, 2])
    """

    embedding_model: torch.nn.Module
    classifier: torch.nn.Module
    labels: list
    sample_rate: int
    spec: dict
    checkpoint: Path

    def __call__(self, wavs, lengths=None):
        """Return the logits ``[B, n_classes]`` for a batch of waveforms."""
        return self.classifier(self.embedding_model(wavs, lengths))

    def eval(self):
        """Put both modules in evaluation mode and return self."""
        self.embedding_model.eval()
        self.classifier.eval()
        return self

    def to(self, device):
        """Move both modules to ``device`` and return self."""
        self.embedding_model.to(device)
        self.classifier.to(device)
        return self


def save_folder_of(phase_folder):
    """Return the ``save`` folder of a phase output folder.

    Arguments
    ---------
    phase_folder : str or pathlib.Path
        A phase's ``output_folder`` (or its ``save`` folder itself).

    Returns
    -------
    pathlib.Path

    Example
    -------
    >>> save_folder_of("results/baseline").as_posix()
    'results/baseline/save'
    >>> save_folder_of("results/baseline/save").as_posix()
    'results/baseline/save'
    """
    folder = Path(phase_folder)
    return folder if folder.name == "save" else folder / "save"


def best_key_of(phase_folder):
    """The metric a phase picks its best checkpoint by (``best_key``).

    Read from ``model_spec.json``; ``accuracy`` when it names none.

    Example
    -------
    >>> best_key_of(getfixture("tmpdir"))
    'accuracy'
    """
    spec_path = save_folder_of(phase_folder) / MODEL_SPEC_FILE
    if spec_path.is_file():
        return read_model_spec(spec_path).get("best_key", "accuracy")
    return "accuracy"


def find_best_checkpoint(phase_folder, key=None):
    """Return the checkpoint with the highest validation ``key``.

    Arguments
    ---------
    phase_folder : str or pathlib.Path
        A phase's output folder (or its ``save`` folder).
    key : str, optional
        The metadata key to maximise; default: the phase's ``best_key``.

    Returns
    -------
    speechbrain.utils.checkpoints.Checkpoint

    Raises
    ------
    FileNotFoundError
        When the folder holds no checkpoint with ``key`` in its metadata.

    Example
    -------
    >>> folder = getfixture("tmpdir")
    >>> ckpt = Checkpointer(folder + "/save", {"m": torch.nn.Linear(1, 1)})
    >>> _ = ckpt.save_checkpoint(meta={"accuracy": 0.3}, name="worse")
    >>> _ = ckpt.save_checkpoint(meta={"accuracy": 0.6}, name="better")
    >>> find_best_checkpoint(folder).path.name
    'CKPT+better'
    """
    save_folder = save_folder_of(phase_folder)
    key = key or best_key_of(phase_folder)
    if not save_folder.is_dir():
        raise FileNotFoundError(
            f"{save_folder} does not exist: is {phase_folder} the output "
            "folder of a finished training phase?"
        )
    checkpointer = Checkpointer(save_folder)
    best = checkpointer.find_checkpoint(
        max_key=key, ckpt_predicate=lambda c: key in c.meta
    )
    if best is None:
        raise FileNotFoundError(
            f"no checkpoint with a validation '{key}' in {save_folder}"
        )
    return best


def load_state(module, path, device="cpu", strict=True):
    """Load a state dict saved by a SpeechBrain checkpointer into ``module``.

    Weights are read with ``torch.load(weights_only=True)``, which refuses
    pickled code. With ``strict=False`` the keys that do not match (a new
    attention pooling, say) are logged and left as initialised.

    Arguments
    ---------
    module : torch.nn.Module
    path : str or pathlib.Path
    device : str or torch.device
    strict : bool

    Returns
    -------
    tuple of (list of str, list of str)
        The missing and the unexpected keys.

    Example
    -------
    >>> path = getfixture("tmpdir") + "/lin.ckpt"
    >>> torch.save(torch.nn.Linear(2, 3).state_dict(), path)
    >>> load_state(torch.nn.Linear(2, 3), path)
    ([], [])
    """
    state = torch.load(path, map_location=device, weights_only=True)
    result = module.load_state_dict(state, strict=strict)
    if result.missing_keys or result.unexpected_keys:
        logger.info(
            "%s: kept initial values for %s; ignored %s",
            path,
            result.missing_keys,
            result.unexpected_keys,
        )
    return list(result.missing_keys), list(result.unexpected_keys)


def read_phase_spec(phase_folder):
    """Read the ``model_spec.json`` of a phase output folder.

    Arguments
    ---------
    phase_folder : str or pathlib.Path

    Returns
    -------
    dict

    Example
    -------
    >>> read_phase_spec(getfixture("tmpdir"))
    Traceback (most recent call last):
    ...
    FileNotFoundError: ...model_spec.json is missing: ...
    """
    spec_path = save_folder_of(phase_folder) / MODEL_SPEC_FILE
    if not spec_path.is_file():
        raise FileNotFoundError(
            f"{spec_path} is missing: {phase_folder} is not the output "
            "folder of a speechbrain-kd training phase"
        )
    return read_model_spec(spec_path)


def load_trained_model(phase_folder, device="cpu", key=None):
    """Rebuild the best model of a phase and load its weights.

    Arguments
    ---------
    phase_folder : str or pathlib.Path
        A phase's output folder.
    device : str or torch.device
        Where to put the modules.
    key : str, optional
        The validation metric that picks the best checkpoint; default: the
        phase's ``best_key``.

    Returns
    -------
    TrainedModel
        In evaluation mode.

    Example
    -------
    >>> from speechbrain_kd.models import SceneClassifier
    >>> from speechbrain_kd.models.spec import write_model_spec
    >>> folder = getfixture("tmpdir")
    >>> emb, clf = torch.nn.Identity(), SceneClassifier(4, 3)
    >>> emb.config = {}
    >>> write_model_spec(
    ...     folder + "/save/model_spec.json", clf, clf, 16000, ["a", "b", "c"]
    ... )
    >>> ckpt = Checkpointer(
    ...     folder + "/save", {"embedding_model": clf, "classifier": clf}
    ... )
    >>> _ = ckpt.save_checkpoint(meta={"accuracy": 0.5})
    >>> model = load_trained_model(folder)
    >>> model.labels, model.sample_rate
    (['a', 'b', 'c'], 16000)
    >>> model.classifier(torch.zeros(2, 4)).shape
    torch.Size([2, 3])
    """
    save_folder = save_folder_of(phase_folder)
    spec = read_phase_spec(phase_folder)
    best = find_best_checkpoint(save_folder, key=key)
    modules = {}
    for name in MODEL_MODULES:
        module = build_module(spec[name])
        if name not in best.paramfiles:
            raise FileNotFoundError(
                f"checkpoint {best.path} has no {name}.ckpt"
            )
        load_state(module, best.paramfiles[name], device=device)
        modules[name] = module.to(device).eval()
    return TrainedModel(
        embedding_model=modules["embedding_model"],
        classifier=modules["classifier"],
        labels=list(spec["labels"]),
        sample_rate=int(spec["sample_rate"]),
        spec=spec,
        checkpoint=best.path,
    )


def init_from_phase(phase_folder, modules, device="cpu", key=None):
    """Initialise ``modules`` from the best checkpoint of another phase.

    Used to start a specialist or a student from the baseline. Parameters
    that the source lacks (a new attention pooling, say) keep their initial
    values; a shape mismatch is an error.

    Arguments
    ---------
    phase_folder : str or pathlib.Path
        The output folder of the phase to start from.
    modules : dict of str -> torch.nn.Module
        Usually ``{"embedding_model": ..., "classifier": ...}``.
    device : str or torch.device
    key : str, optional
        The validation metric that picks the checkpoint; default: the
        phase's ``best_key``.

    Returns
    -------
    dict of str -> list of str
        For each module, the parameters that kept their initial values.

    Example
    -------
    >>> folder = getfixture("tmpdir")
    >>> source = torch.nn.Linear(2, 2)
    >>> ckpt = Checkpointer(folder + "/save", {"classifier": source})
    >>> _ = ckpt.save_checkpoint(meta={"accuracy": 0.5})
    >>> target = torch.nn.Linear(2, 2)
    >>> init_from_phase(folder, {"classifier": target})
    {'classifier': []}
    >>> torch.equal(target.weight, source.weight)
    True
    """
    best = find_best_checkpoint(phase_folder, key=key)
    spec_path = save_folder_of(phase_folder) / MODEL_SPEC_FILE
    spec = read_model_spec(spec_path) if spec_path.is_file() else {}
    kept = {}
    for name, module in modules.items():
        if name not in best.paramfiles:
            raise FileNotFoundError(
                f"cannot initialise '{name}': checkpoint {best.path} has no "
                f"{name}.ckpt"
            )
        source_class = spec.get(name, {}).get("class", "")
        if (
            source_class
            and source_class.rpartition(".")[2] != type(module).__name__
        ):
            raise ValueError(
                f"cannot initialise '{name}' ({type(module).__name__}) from "
                f"{phase_folder}, which holds a {source_class}: start from "
                "scratch (--init_from=null) or from a phase of the same "
                "model family"
            )
        try:
            missing, _ = load_state(
                module, best.paramfiles[name], device=device, strict=False
            )
        except RuntimeError as error:  # shapes differ: other sizes
            raise ValueError(
                f"cannot initialise '{name}' from {best.path}: the sizes "
                f"differ ({error}); start from scratch (--init_from=null) or "
                "from a phase with the same model options"
            ) from error
        kept[name] = missing
    logger.info("Initialised %s from %s", sorted(modules), best.path)
    return kept
