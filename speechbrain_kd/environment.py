"""Faults of the machine a run works on, each as one line saying what to do.

A full disk, a folder that cannot be written and a device the machine does
not have end a run in exceptions that rarely name the cause (``torch.save``
on a full disk raises ``[enforce fail at inline_container.cc:672] .
unexpected pos``) and never say what to do. :func:`check_device` refuses a
device before anything is written; :func:`environment_fault` turns the
other faults into one line, and :func:`one_line_faults` ends an entry
point with it. Every command-line entry point that writes uses them;
:func:`run_command` ends the library's ``python -m`` commands, turning
their users' errors into one line too.
"""

import contextlib
import errno
import os
import shutil
import sys
from pathlib import Path

from speechbrain_kd.hparams_preview import SettingError

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)
# What torch.save raises when its writes fail (from caffe2's zip writer and
# the C++ stream below it): on a local disk, a full one.
TORCH_WRITE_FAILED = (
    "inline_container.cc",
    "PytorchStreamWriter failed writing",
    "basic_ios::clear",
)


def check_device(device):
    """Refuse a device this machine does not have, before any work.

    Arguments
    ---------
    device : str or None
        The ``--device`` run option (None: SpeechBrain picks one).

    Raises
    ------
    speechbrain_kd.hparams_preview.SettingError
        Naming the option, what the machine has and what to do.

    Example
    -------
    >>> check_device("cpu")
    >>> check_device("gpu")
    Traceback (most recent call last):
    ...
    speechbrain_kd.hparams_preview.SettingError: --device=gpu: not a device...
    >>> import torch
    >>> torch.cuda.device_count() > 7 or check_device("cuda:7")
    Traceback (most recent call last):
    ...
    speechbrain_kd.hparams_preview.SettingError: --device=cuda:7: ...
    """
    if device is None:
        return
    import torch  # here: the data tools that use this module need no torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise SettingError(
            f"--device={device}: not a device name (cpu, cuda, cuda:N, mps, "
            "...)"
        ) from None
    if parsed.type == "cpu":
        return
    backend = getattr(torch, parsed.type, None)
    count = backend.device_count() if hasattr(backend, "device_count") else 0
    if (parsed.index or 0) < count:
        return
    seen = f"only {count}" if count else "no"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if parsed.type == "cuda" and visible is not None:
        seen += f" (CUDA_VISIBLE_DEVICES={visible!r})"
    raise SettingError(
        f"--device={device}: this machine has {seen} {parsed.type} "
        "device(s) that torch can use: leave --device out, or give "
        "--device=cpu"
        + (f" or one of {parsed.type}:0..{count - 1}" if count else "")
    )


def _causes(error):
    """``error`` and the exceptions it was raised from or while handling."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def _free_space(folder):
    """The free space of the device that holds ``folder`` (or its parent)."""
    path = Path(folder).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return f"{shutil.disk_usage(path).free / 2**20:.1f} MiB free"


def _file_in_the_way(number, path):
    """A folder could not be made because a file has its name or a parent's."""
    if number == errno.ENOTDIR:
        return True
    return number == errno.EEXIST and Path(path).is_file()


def environment_fault(error, folder, setting="--output_folder"):
    """One line for a fault of the machine, or None for any other error.

    Looks through the exceptions ``error`` was raised from or while
    handling, so that a fault wrapped by another library is still found.

    Arguments
    ---------
    error : BaseException
    folder : str or pathlib.Path
        Where the run writes: named when the error does not say which file
        it was writing (``torch.save``, a failed ``write``).
    setting : str
        What the user sets to write elsewhere.

    Returns
    -------
    str or None

    Example
    -------
    >>> import errno
    >>> full = OSError(errno.ENOSPC, "No space left on device")
    >>> environment_fault(full, "/")
    'no space left on the device of / (... MiB free): free some space ...'
    >>> environment_fault(PermissionError(
    ...     errno.EACCES, "Permission denied", "/srv/out"), "/srv/out")
    'cannot write /srv/out (Permission denied): choose another --output_...'
    >>> environment_fault(ValueError("bad setting"), "/") is None
    True
    """
    for cause in _causes(error):
        number = getattr(cause, "errno", None)
        path = getattr(cause, "filename", None) or folder
        if isinstance(cause, OSError) and number in NO_SPACE:
            if path != folder:
                path = Path(path).parent
            return (
                f"no space left on the device of {path} "
                f"({_free_space(path)}): free some space there or choose "
                f"another {setting}, then rerun: finished work is kept"
            )
        if isinstance(cause, OSError) and number in NOT_WRITABLE:
            return (
                f"cannot write {path} ({cause.strerror}): choose another "
                f"{setting}, one you can write, or change its permissions"
            )
        if isinstance(cause, OSError) and _file_in_the_way(number, path):
            return (
                f"cannot make the folder {path} ({cause.strerror}): a file "
                f"stands where a folder should be; move it or choose another "
                f"{setting}"
            )
        if isinstance(cause, RuntimeError) and any(
            text in str(cause) for text in TORCH_WRITE_FAILED
        ):
            return (
                f"no space left on the device of {folder}? torch could not "
                f"finish writing a file there ({_free_space(folder)}): free "
                f"some space there or choose another {setting}, then rerun: "
                "finished work is kept"
            )
    return None


@contextlib.contextmanager
def one_line_faults(folder, setting="--output_folder"):
    """End the block with one line (``SystemExit``) on a fault of the machine.

    Other errors pass through unchanged.

    Arguments
    ---------
    folder : str or pathlib.Path
        Where the block writes (see :func:`environment_fault`).
    setting : str
        What the user sets to write elsewhere.

    Example
    -------
    >>> import errno
    >>> with one_line_faults("/results"):
    ...     raise OSError(errno.EROFS, "Read-only file system", "/results")
    Traceback (most recent call last):
    ...
    SystemExit: cannot write /results (Read-only file system): choose ...
    """
    try:
        yield
    except Exception as error:
        message = environment_fault(error, folder, setting)
        if message is None:
            raise
        raise SystemExit(message) from None


def run_command(main, errors):
    """Run an entry point's ``main()`` and exit with its status.

    The ``__main__`` block of the library's commands: an error of a type in
    ``errors`` (the user's, such as a missing file) ends the process with
    one line, ``error: <message>`` on stderr and exit status 1, instead of a
    traceback. Others pass through.

    Arguments
    ---------
    main : callable
        Takes no argument (it reads ``sys.argv``); returns the exit status.
    errors : tuple of type
        The exception types to end in one line.

    Example
    -------
    >>> def main():
    ...     raise FileNotFoundError("x.wav does not exist")
    >>> run_command(main, (FileNotFoundError, ValueError))
    Traceback (most recent call last):
    ...
    SystemExit: error: x.wav does not exist
    >>> run_command(lambda: 0, (ValueError,))
    Traceback (most recent call last):
    ...
    SystemExit: 0
    """
    try:
        sys.exit(main())
    except errors as error:
        sys.exit(f"error: {error}")
