"""One phase of a recipe: the body every recipe's ``train.py`` shares.

A phase checks its settings before it writes anything
(:mod:`~speechbrain_kd.phase.settings`), prepares the data and builds the
datasets (:mod:`~speechbrain_kd.phase.data`: audio at the model's rate,
encoded labels, random crops), gets the teachers' soft labels when it has
teachers, writes the model's spec and complexity, starts from another
phase's model when asked, trains and evaluates on the valid and test
splits (:mod:`~speechbrain_kd.phase.run`). A recipe describes only what is
its own in a :class:`PhaseTask` (how to prepare its data, the manifest
column of the labels, extra checks, dataset keys or runs) and calls
:func:`phase_main` (:mod:`~speechbrain_kd.phase.command`)::

    TASK = PhaseTask(label_column="label", prepare=prepare_from_settings)
    if __name__ == "__main__":
        phase_main(sys.argv[1:], TASK)

Bad settings or data end the phase with one line and no traceback; with
the environment variable :data:`ERROR_FILE_ENV` set, every error that
ends it is also written there as JSON (:class:`ErrorReport`,
:mod:`~speechbrain_kd.phase.errors`), for a caller such as the scene
recipe's pipeline.
"""

from speechbrain_kd.phase.command import phase_main
from speechbrain_kd.phase.data import dataio_prep, prepare_data
from speechbrain_kd.phase.errors import (
    ERROR_FILE_ENV,
    USER_ERRORS,
    DataPreparationError,
    ErrorReport,
)
from speechbrain_kd.phase.run import check_teacher_labels, run_phase
from speechbrain_kd.phase.settings import check_phase_limits, phase_settings
from speechbrain_kd.phase.task import PhaseTask

__all__ = [
    "ERROR_FILE_ENV",
    "USER_ERRORS",
    "DataPreparationError",
    "ErrorReport",
    "PhaseTask",
    "check_phase_limits",
    "check_teacher_labels",
    "dataio_prep",
    "phase_main",
    "phase_settings",
    "prepare_data",
    "run_phase",
]
