"""Files written whole or not at all, and their digests.

Every output of the toolkit (manifests, results, soft-label caches, model
specs, predictions) goes through :func:`replacing`: it is written to a
temporary file in the same folder, which then replaces the target with
``os.replace`` (atomic on POSIX), so a reader or a resumed run never sees
half a file, and a failure leaves the old file, if any, untouched.
:func:`file_sha256` digests a file's content (what caches are keyed by).
"""

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def replacing(path):
    """A temporary path that replaces ``path`` when the block succeeds.

    Missing parent folders are created. When the block raises, the
    temporary file is removed and ``path`` is left as it was.

    Arguments
    ---------
    path : str or pathlib.Path

    Yields
    ------
    str
        A fresh, empty file next to ``path``, to be written by the block.

    Example
    -------
    >>> path = getfixture("tmpdir") + "/x.txt"
    >>> with replacing(path) as tmp:
    ...     _ = open(tmp, "w").write("whole")
    >>> try:
    ...     with replacing(path) as tmp:
    ...         _ = open(tmp, "w").write("ha")
    ...         raise KeyboardInterrupt
    ... except KeyboardInterrupt:
    ...     pass
    >>> open(path).read(), len(os.listdir(os.path.dirname(path)))
    ('whole', 1)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path, text):
    """Write ``text`` (UTF-8, newlines as given) to ``path`` whole.

    Arguments
    ---------
    path : str or pathlib.Path
    text : str

    Example
    -------
    >>> path = getfixture("tmpdir") + "/a/b.csv"
    >>> write_text_atomic(path, "x\\r\\ny\\n")
    >>> open(path, newline="").read()
    'x\\r\\ny\\n'
    """
    with replacing(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            f.write(text)


def write_json_atomic(path, obj):
    """Write ``obj`` as indented JSON to ``path`` whole or not at all.

    The text is made before any file is touched, so an object that JSON
    cannot hold leaves no trace.

    Arguments
    ---------
    path : str or pathlib.Path
    obj : object
        Anything ``json.dumps`` accepts.

    Example
    -------
    >>> path = getfixture("tmpdir") + "/x.json"
    >>> write_json_atomic(path, {"a": 1})
    >>> open(path).read()
    '{\\n  "a": 1\\n}'
    """
    write_text_atomic(path, json.dumps(obj, indent=2))


def file_sha256(path):
    """SHA-256 of a file's content.

    Example
    -------
    >>> path = getfixture("tmpdir") + "/x.txt"
    >>> _ = open(path, "w").write("abc")
    >>> file_sha256(path)[:12]
    'ba7816bf8f01'
    """
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
