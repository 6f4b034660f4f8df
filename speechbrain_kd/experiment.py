"""What a phase writes into its experiment folder beside SpeechBrain."""

import os
import tempfile
import threading
from pathlib import Path

import speechbrain as sb
from speechbrain.utils.logger import get_environment_description

ENV_LOG = "env.log"


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
        target=_write_whole,
        args=(Path(folder) / ENV_LOG, get_environment_description),
        name="env.log",
    )
    writer.start()
    return writer


def _write_whole(path, make_text):
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(make_text())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
