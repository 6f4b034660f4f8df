"""Push an exported model folder to the Hugging Face Hub.

SpeechBrain has no push helper; this one uploads a folder made by
:mod:`speechbrain_kd.export` with ``huggingface_hub``. The token comes from
the ``token`` argument or the ``HF_TOKEN`` environment variable. Without a
network (or with ``HF_HUB_OFFLINE=1``) it fails at once with a clear message
instead of hanging.
"""

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

REQUIRED_FILES = ("hyperparams.yaml", "embedding_model.ckpt", "classifier.ckpt")


def _endpoint():
    from huggingface_hub import constants

    return constants.ENDPOINT


def check_online(endpoint=None, timeout=3.0):
    """Raise ``RuntimeError`` quickly when the hub cannot be reached.

    Arguments
    ---------
    endpoint : str, optional
        Defaults to huggingface_hub's endpoint.
    timeout : float
        Seconds to wait for a connection.

    Example
    -------
    >>> import pytest
    >>> with pytest.MonkeyPatch.context() as mp:
    ...     mp.setenv("HF_HUB_OFFLINE", "1")
    ...     check_online()
    Traceback (most recent call last):
    ...
    RuntimeError: HF_HUB_OFFLINE is set: cannot push to the Hugging Face Hub
    """
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        raise RuntimeError(
            "HF_HUB_OFFLINE is set: cannot push to the Hugging Face Hub"
        )
    url = urlparse(endpoint or _endpoint())
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError as error:
        raise RuntimeError(
            f"cannot reach {url.hostname}:{port} ({error}): no network? "
            "The model folder was not uploaded."
        ) from error


def push_to_hub(export_folder, repo_id, private=False, token=None):
    """Create (if needed) the model repo ``repo_id`` and upload the folder.

    Arguments
    ---------
    export_folder : str or pathlib.Path
        Made by :func:`speechbrain_kd.export.export_model`.
    repo_id : str
        ``user/name`` or ``org/name``.
    private : bool
    token : str, optional
        Default: ``HF_TOKEN`` from the environment.

    Returns
    -------
    str
        The URL of the uploaded commit or repo.
    """
    from huggingface_hub import HfApi

    folder = Path(export_folder)
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{folder} is not an exported model (missing {missing}); run "
            "python -m speechbrain_kd.export first"
        )
    if "/" not in repo_id:
        raise ValueError(f"repo id {repo_id!r} must look like 'user/name'")
    token = token or os.environ.get("HF_TOKEN")
    if not token:
        raise RuntimeError("no token: set HF_TOKEN or pass token=...")
    check_online()
    api = HfApi(token=token)
    try:
        api.create_repo(
            repo_id, private=private, exist_ok=True, repo_type="model"
        )
        result = api.upload_folder(
            folder_path=str(folder),
            repo_id=repo_id,
            repo_type="model",
            commit_message="Upload speechbrain-kd model",
        )
    except OSError as error:
        raise RuntimeError(
            f"uploading {folder} to {repo_id} failed: {error}"
        ) from error
    return str(getattr(result, "commit_url", result))
