"""How long a phase trains and what each epoch did.

:func:`epoch_counter` gives a phase SpeechBrain's plain ``EpochCounter`` or,
with a ``patience``, an early-stopping counter checkpointed whole
(:class:`EpochCounterWithStopper`), which the Brain feeds its ``best_key``
validation metric; :func:`write_learning_curve` keeps a phase's
``learning_curve.csv``, one line per epoch across resumes (drawn by
:func:`speechbrain_kd.plots.plot_learning_curves`).
"""

import csv
import io
import logging
import math
from pathlib import Path

import yaml
from speechbrain.utils import epoch_loop
from speechbrain.utils.checkpoints import (
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)

from speechbrain_kd.files import write_text_atomic

logger = logging.getLogger(__name__)
LEARNING_CURVE = "learning_curve.csv"  # one row per epoch, in output_folder


@register_checkpoint_hooks
class EpochCounterWithStopper(epoch_loop.EpochCounterWithStopper):
    """SpeechBrain's early-stopping epoch counter, checkpointed whole.

    Two faults of SpeechBrain 1.1.2's class are mended here:

    - It registers the checkpoint hooks of ``EpochCounter`` only, so it
      saves and recovers the epoch and forgets its best epoch and score: a
      resumed run stops at the wrong epoch. This class registers its own
      hooks and also recovers the decision to stop (which SpeechBrain does
      not save), so that a rerun of a phase that stopped trains no more
      epochs. A checkpoint of a plain ``EpochCounter`` resumes too,
      counting the patience from there.
    - With ``direction="max"`` its relative margin lowers the bar
      (``(1 - min_delta) * best``), so an epoch that only equals the best
      counts as an improvement and an accuracy on a plateau never stops
      training. Here an improvement must beat the best by the margin in
      the metric's direction.

    Arguments are those of
    ``speechbrain.utils.epoch_loop.EpochCounterWithStopper``.

    Example
    -------
    >>> from speechbrain.utils.checkpoints import Checkpointer
    >>> counter = EpochCounterWithStopper(10, 1, 0, "max")
    >>> ckpt = Checkpointer(getfixture("tmpdir"), {"counter": counter})
    >>> for epoch in counter:
    ...     counter.update_metric([0.5, 0.7, 0.6][epoch - 1])
    ...     _ = ckpt.save_checkpoint()
    >>> again = EpochCounterWithStopper(10, 1, 0, "max")
    >>> _ = Checkpointer(ckpt.checkpoints_dir, {"counter": again})
    >>> _ = _.recover_if_possible()
    >>> again.current, again.best_limit, again.best_score, again.should_stop
    (3, 2, 0.7, True)
    >>> plateau = EpochCounterWithStopper(10, 2, 0, "max")
    >>> for epoch in plateau:
    ...     plateau.update_metric(0.5)
    >>> plateau.current, plateau.best_limit
    (3, 1)
    """

    def update_metric(self, current_metric):
        """Count the epochs since the metric last beat its best.

        Arguments
        ---------
        current_metric : float
            This epoch's validation metric.
        """
        if self.current <= self.limit_warmup:
            return
        margin = self.min_delta * abs(self.best_score)
        if math.isinf(self.best_score):
            improved = math.isfinite(current_metric)
        else:
            improved = -self.sign * (current_metric - self.best_score) > margin
        if improved:
            self.best_limit, self.best_score = self.current, current_metric
        waited = self.current - self.best_limit
        self.should_stop = waited >= self.limit_to_stop
        if self.should_stop:
            logger.info(
                "%d epochs without improvement of the validation metric "
                "(best %.4f at epoch %d): stopping",
                waited,
                self.best_score,
                self.best_limit,
            )

    @mark_as_saver
    def _save(self, path):
        super()._save(path)

    @mark_as_loader
    def _recover(self, path, end_of_epoch=True):
        with open(path, encoding="utf-8") as f:
            saved = yaml.safe_load(f)
        if isinstance(saved, int):  # a plain EpochCounter's checkpoint
            self.current = saved if end_of_epoch else saved - 1
            self.best_limit = self.current
            return
        super()._recover(path, end_of_epoch)
        self.should_stop = (
            self.current > self.limit_warmup
            and self.current - self.best_limit >= self.limit_to_stop
        )


def epoch_counter(limit, patience=None, warmup=0):
    """The epoch counter of a phase, stopping early when given a patience.

    ``patience`` None gives SpeechBrain's plain ``EpochCounter`` (every
    epoch up to ``limit`` runs, as before); an int gives its
    ``EpochCounterWithStopper``, which the Brain feeds its ``best_key``
    validation metric (an accuracy, so ``direction="max"``): training
    stops once ``patience`` epochs after ``warmup`` bring no improvement.

    Arguments
    ---------
    limit : int
        The most epochs.
    patience : int, optional
        Epochs without improvement that stop training (None: never).
    warmup : int, optional
        Epochs before the stopper starts counting (None: 0).

    Returns
    -------
    EpochCounter or EpochCounterWithStopper

    Example
    -------
    >>> type(epoch_counter(30)).__name__
    'EpochCounter'
    >>> counter = epoch_counter(30, patience=2)
    >>> for epoch in counter:
    ...     counter.update_metric([0.5, 0.7, 0.6, 0.6, 0.9][epoch - 1])
    >>> counter.current, counter.best_limit
    (4, 2)
    >>> epoch_counter(30, patience=0)
    Traceback (most recent call last):
    ...
    ValueError: patience must be an int >= 1, or null (no early stopping); got 0
    """
    if patience is None:
        return epoch_loop.EpochCounter(limit)
    warmup = 0 if warmup is None else warmup
    # SpeechBrain takes 0, which stops after the first epoch it counts.
    if isinstance(patience, bool) or int(patience) != patience or patience < 1:
        raise ValueError(
            "patience must be an int >= 1, or null (no early stopping); "
            f"got {patience!r}"
        )
    if isinstance(warmup, bool) or int(warmup) != warmup or warmup < 0:
        raise ValueError(f"patience_warmup must be an int >= 0; got {warmup!r}")
    return EpochCounterWithStopper(limit, patience, warmup, direction="max")


def write_learning_curve(path, row):
    """Write ``row`` as its epoch's line of a learning-curve CSV file.

    Lines of earlier epochs are kept and those of this epoch or later ones
    dropped (a resumed run rewrites them), so the file holds one line per
    epoch however often the phase was resumed. Columns are the union of
    the rows' keys in first-seen order (``epoch`` first); the file is
    replaced whole.

    Arguments
    ---------
    path : str or pathlib.Path
        The CSV file (``learning_curve.csv``).
    row : dict
        ``epoch`` (int) and the epoch's values (None: an empty cell).

    Example
    -------
    >>> path = getfixture("tmpdir") + "/learning_curve.csv"
    >>> for epoch in (1, 2, 3, 2, 3):  # resumed after epoch 1
    ...     write_learning_curve(path, {"epoch": epoch, "valid_loss": epoch})
    >>> print(open(path).read(), end="")
    epoch,valid_loss
    1,1
    2,2
    3,3
    """
    path = Path(path)
    rows = []
    if path.is_file():
        with open(path, newline="", encoding="utf-8") as f:
            for line, old in enumerate(csv.DictReader(f), start=2):
                epoch = old.get("epoch") or ""
                if not epoch.isdigit():
                    raise ValueError(
                        f"{path}, line {line}: epoch {epoch!r} is not an "
                        "epoch number (delete the file to start it again)"
                    )
                if int(epoch) < row["epoch"]:
                    rows.append(old)
    rows.append(row)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, text.getvalue())
