"""What a phase writes into its experiment folder beside SpeechBrain."""

import contextlib
import fcntl
import os
import socket
import sys
import threading
import time
from pathlib import Path

import speechbrain as sb
from speechbrain.utils.logger import get_environment_description

from speechbrain_kd.files import write_text_atomic

ENV_LOG = "env.log"
LOCK_FILE = ".writer.lock"


class FolderInUse(RuntimeError):
    """Another run holds the output folder (:func:`sole_writer`).

    A ``RuntimeError``, so that code catching those still catches it.

    Example
    -------
    >>> isinstance(FolderInUse("results/baseline is being written"),
    ...            RuntimeError)
    True
    """


@contextlib.contextmanager
def sole_writer(folder):
    """Make this run the only one writing ``folder`` while the block runs.

    An exclusive ``flock`` on ``folder/.writer.lock``, which names the
    holder (process, host, start time, command). A second run on the same
    folder stops at once with that name instead of mixing its checkpoints
    and results with the first one's. The operating system drops the lock
    when the holder ends, however it ends (SIGKILL included), so a killed
    run never leaves the folder locked. Only the main process of a
    multi-process run takes it. (``flock`` does not reach across hosts on
    every network file system.)

    A block that fails before writing anything into a folder it created
    (a refused option, say) removes the folder again, and the parents it
    created, so that a refusal leaves no empty folder behind.

    Arguments
    ---------
    folder : str or pathlib.Path
        Created if missing.

    Example
    -------
    >>> folder = getfixture("tmpdir") + "/run"
    >>> with sole_writer(folder + "/a/b"):
    ...     raise SystemExit("--lr=-1 must be a number > 0")
    Traceback (most recent call last):
    ...
    SystemExit: --lr=-1 must be a number > 0
    >>> os.path.exists(folder)
    False
    >>> with sole_writer(folder):
    ...     with sole_writer(folder):
    ...         pass
    Traceback (most recent call last):
    ...
    speechbrain_kd.experiment.FolderInUse: .../run is being written by ...
    >>> with sole_writer(folder):  # free again
    ...     pass
    """
    if not sb.utils.distributed.if_main_process():
        yield
        return
    folder = Path(folder)
    created = [path for path in (folder, *folder.parents) if not path.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise FolderInUse(
                f"{folder} is being written by another run ({holder}): wait "
                "for it to end, or use another --output_folder"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(
            f"pid {os.getpid()} on {socket.gethostname()} since "
            f"{time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(sys.argv)}\n"
        )
        handle.flush()
        try:
            yield
        except BaseException:
            if created and os.listdir(folder) == [LOCK_FILE]:
                (folder / LOCK_FILE).unlink()
                with contextlib.suppress(OSError):  # another run wrote there
                    for path in created:
                        path.rmdir()
            raise
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def start_env_log(folder):
    """Write SpeechBrain's ``env.log`` into ``folder`` from a thread.

    The same description ``speechbrain.create_experiment_directory`` saves
    (call it with ``save_env_desc=False``), but ``pip freeze`` and ``git``,
    about a second of subprocesses, run while the phase builds its model
    and loaders instead of before: the interpreter waits for the thread at
    exit. The file is written whole (a temporary file renamed) or not at
    all, and only by the main process.

    Arguments
    ---------
    folder : str or pathlib.Path
        The phase's ``output_folder`` (it exists).

    Returns
    -------
    threading.Thread or None
        The writer (None on processes other than the main one).

    Example
    -------
    >>> folder = getfixture("tmpdir")
    >>> start_env_log(folder).join()
    >>> open(folder + "/env.log").readline().strip()
    'SpeechBrain system description'
    """
    if not sb.utils.distributed.if_main_process():
        return None
    writer = threading.Thread(
        target=lambda: write_text_atomic(
            Path(folder) / ENV_LOG, get_environment_description()
        ),
        name="env.log",
    )
    writer.start()
    return writer
