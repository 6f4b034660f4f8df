"""What a recipe's phase has of its own (:class:`PhaseTask`)."""

import dataclasses
import operator
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class PhaseTask:
    """What a recipe's phase has of its own; the rest is this module's.

    Arguments
    ---------
    label_column : str
        The manifests' column of the class names.
    prepare : callable
        ``prepare(settings)`` writes ``train.csv``, ``valid.csv`` and
        ``test.csv`` into ``settings["prepare_folder"]`` (run on the main
        process); it raises ``ValueError`` or ``FileNotFoundError`` with
        a message naming bad data.
    training_labels : callable, optional
        ``training_labels(settings)``: the training classes read before
        anything is written (None when the data cannot tell yet), so that
        a model over its limits is refused first; without it, the limits
        are checked once the data is prepared.
    phase_name : callable
        ``phase_name(settings)``: the phase's name (``model_spec.json``);
        by default the ``phase`` setting. The ``ensemble`` phase only
        evaluates its teachers; another phase with ``teacher_folders``
        learns their soft labels.
    check_settings : callable, optional
        ``check_settings(settings)`` raises :class:`SettingError` for a
        setting the task refuses, before anything is written.
    dataset_keys : callable, optional
        ``dataset_keys(hparams, train, dataset, split)`` adds dynamic
        items to ``dataset`` and returns their output keys.
    train_loader_kwargs : callable, optional
        ``train_loader_kwargs(hparams, datasets)``: the training loader's
        options; by default ``train_dataloader_opts``.
    runs : callable, optional
        ``runs(hparams_file, overrides)``: the overrides of each run one
        command makes (one per pair, say); by default ``[overrides]``.

    Example
    -------
    >>> task = PhaseTask("label", prepare=print)
    >>> task.phase_name({"phase": "baseline"})
    'baseline'
    """

    label_column: str
    prepare: Callable
    training_labels: Callable | None = None
    phase_name: Callable = operator.itemgetter("phase")
    check_settings: Callable | None = None
    dataset_keys: Callable | None = None
    train_loader_kwargs: Callable | None = None
    runs: Callable | None = None
