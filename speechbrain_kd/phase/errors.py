"""How a phase ends on an error: one line, and a report for its caller."""

import contextlib
import json
import os
from pathlib import Path

from speechbrain_kd.experiment import FolderInUse
from speechbrain_kd.files import write_json_atomic
from speechbrain_kd.hparams_preview import SettingError
from speechbrain_kd.teacher_sources import TeacherError

# Where a phase writes the error that ended it (JSON), when set.
ERROR_FILE_ENV = "SPEECHBRAIN_KD_ERROR_FILE"


class DataPreparationError(ValueError):
    """The recipe's data preparation refused the data (its message).

    Example
    -------
    >>> str(DataPreparationError("data preparation: meta.csv is missing"))
    'data preparation: meta.csv is missing'
    """


# Errors of the user's settings or data: one line, no traceback.
USER_ERRORS = (FolderInUse, SettingError, TeacherError, DataPreparationError)


class ErrorReport(contextlib.AbstractContextManager):
    """Write the error that ends the block to ``path`` as JSON, then re-raise.

    ``{"error": <one line>, "log": <the phase's log.txt, or null>}``: the
    message of a ``SystemExit`` (the one-line user errors), or the type and
    message of an unexpected exception. The caller that set ``path`` reads
    it instead of the phase's output. Nothing is written without ``path``
    or when the block ends well.

    Arguments
    ---------
    path : str or pathlib.Path, optional
        Where to write; by default the variable :data:`ERROR_FILE_ENV`.

    Attributes
    ----------
    log : pathlib.Path or None
        The log the failed phase wrote (named when it exists).

    Example
    -------
    >>> import json
    >>> path = getfixture("tmpdir") + "/error.json"
    >>> with ErrorReport(path) as report:
    ...     report.log = Path(getfixture("tmpdir")) / "no_log.txt"
    ...     raise KeyError("scene")
    Traceback (most recent call last):
    ...
    KeyError: 'scene'
    >>> json.load(open(path))
    {'error': "KeyError: 'scene'", 'log': None}
    """

    def __init__(self, path=None):
        self.path = path or os.environ.get(ERROR_FILE_ENV) or None
        self.log = None

    def __exit__(self, kind, error, traceback):
        if self.path is None or error is None:
            return False
        if isinstance(error, SystemExit):
            if error.code in (None, 0):
                return False
            message = error.code
            if not isinstance(message, str):
                message = f"exit status {message}"
        else:
            message = f"{type(error).__name__}: {error}"
        log = self.log if self.log and Path(self.log).is_file() else None
        write_json_atomic(
            self.path,
            {
                "error": " ".join(str(message).split("\n")),
                "log": None if log is None else str(log),
            },
        )
        return False


def read_error_report(path):
    """A failed phase's own report (what :class:`ErrorReport` wrote), or None.

    None where it wrote none, or one cut short (killed while writing).

    Example
    -------
    >>> path = Path(getfixture("tmpdir")) / "error.json"
    >>> read_error_report(path) is None
    True
    >>> _ = path.write_text('{"error": "no data", "log": null}')
    >>> read_error_report(path)
    {'error': 'no data', 'log': None}
    >>> _ = path.write_text('{"error": "no')
    >>> read_error_report(path) is None
    True
    """
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(report, dict) or not report.get("error"):
        return None
    return report
