"""Share exported models on the Hugging Face Hub, and check them first.

    python -m speechbrain_kd.hub push EXPORT_FOLDER USER/REPO [--private]
    python -m speechbrain_kd.hub audit USER/REPO_OR_FOLDER

SpeechBrain has no push helper; :func:`push_to_hub` uploads a folder made by
:mod:`speechbrain_kd.export` with ``huggingface_hub``. The token comes from
the ``token`` argument, else ``HF_TOKEN``, else the token saved by
``hf auth login``. Without a network (or with ``HF_HUB_OFFLINE=1``) it fails
at once with a clear message instead of hanging. :func:`audit_model`
downloads nothing but ``hyperparams.yaml`` and lists what loading it would
import or call.
"""

import argparse
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

from speechbrain_kd.audit import audit_hyperparams
from speechbrain_kd.environment import run_command
from speechbrain_kd.speechbrain_folder import EXPORT_FILES

TRUE_VALUES = ("1", "true", "yes", "on")


def _endpoint():
    from huggingface_hub import constants

    return constants.ENDPOINT


def check_online(endpoint=None, timeout=3.0):
    """Raise ``RuntimeError`` quickly when the hub cannot be reached.

    Arguments
    ---------
    endpoint : str, optional
        Defaults to huggingface_hub's endpoint (``HF_ENDPOINT``).
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
    RuntimeError: HF_HUB_OFFLINE is set: the Hugging Face Hub is off limits
    """
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in TRUE_VALUES:
        raise RuntimeError(
            "HF_HUB_OFFLINE is set: the Hugging Face Hub is off limits"
        )
    url = urlparse(endpoint or _endpoint())
    port = url.port or (443 if url.scheme == "https" else 80)
    # The socket timeout does not bound the DNS look-up: run it in a thread
    # and stop waiting after ``timeout``.
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        address = pool.submit(
            socket.getaddrinfo, url.hostname, port, type=socket.SOCK_STREAM
        ).result(timeout=timeout)[0][4]
        socket.create_connection(address[:2], timeout=timeout).close()
    except (OSError, TimeoutError) as error:
        reason = str(error) or "timed out"
        raise RuntimeError(
            f"cannot reach {url.hostname}:{port} ({reason}): no network?"
        ) from error
    finally:
        pool.shutdown(wait=False)


def _token(token):
    if token:
        return token
    from huggingface_hub import get_token

    # get_token reads HF_TOKEN, then the token saved by `hf auth login`.
    found = os.environ.get("HF_TOKEN") or get_token()
    if not found:
        # Only what the command line can do: it has no token option.
        raise RuntimeError(
            "no Hugging Face token: set HF_TOKEN or run `hf auth login`"
        )
    return found


def push_to_hub(export_folder, repo_id, private=False, token=None):
    """Create (if needed) the model repo ``repo_id`` and upload the folder.

    Arguments
    ---------
    export_folder : str or pathlib.Path
        Made by :func:`speechbrain_kd.export.export_model`.
    repo_id : str
        ``user/name`` or ``org/name``.
    private : bool
        Create the repo private (an existing repo keeps its visibility).
    token : str, optional
        Default: ``HF_TOKEN``, else the saved login token.

    Returns
    -------
    str
        The URL of the upload commit.

    Raises
    ------
    RuntimeError
        Offline, no token, or the hub refused or failed the upload; the
        message names the repo.

    Example
    -------
    >>> push_to_hub(getfixture("tmpdir"), "me/scenes")
    Traceback (most recent call last):
    ...
    FileNotFoundError: ... is not an exported model (missing ...
    """
    folder = Path(export_folder)
    missing = [name for name in EXPORT_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{folder} is not an exported model (missing {missing}); run "
            "python -m speechbrain_kd.export first"
        )
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"repo id {repo_id!r} must look like 'user/name'")
    token = _token(token)
    try:
        check_online()
    except RuntimeError as error:
        raise RuntimeError(
            f"cannot push {folder} to {repo_id}: {error}"
        ) from error
    from huggingface_hub import HfApi

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
    # huggingface_hub raises OSError subclasses for HTTP errors and httpx
    # errors for broken connections: name the repo for any of them.
    except Exception as error:
        raise RuntimeError(
            f"uploading {folder} to {repo_id} failed: {error}"
        ) from error
    return str(getattr(result, "commit_url", result))


def audit_model(source, token=None):
    """Audit the ``hyperparams.yaml`` of a local folder or a hub repo.

    Only ``hyperparams.yaml`` is downloaded, and nothing is loaded.

    Arguments
    ---------
    source : str or pathlib.Path
        A local folder, a local YAML file, or a hub repo id.
    token : str, optional

    Returns
    -------
    list of speechbrain_kd.audit.AuditEntry

    Example
    -------
    >>> path = str(getfixture("tmpdir")) + "/hyperparams.yaml"
    >>> _ = open(path, "w").write("a: !apply:os.system [ls]\\n")
    >>> audit_model(getfixture("tmpdir"))
    [AuditEntry(tag='!apply:', target='os.system', allowed=False)]
    """
    path = Path(source)
    if path.is_dir():
        path = path / "hyperparams.yaml"
    if not path.is_file():
        if path.suffix in (".yaml", ".yml") or Path(source).exists():
            raise FileNotFoundError(f"{path} does not exist")
        from huggingface_hub import hf_hub_download

        try:
            check_online()
            path = hf_hub_download(str(source), "hyperparams.yaml", token=token)
        except Exception as error:
            raise RuntimeError(
                f"cannot download hyperparams.yaml of {source}: {error}"
            ) from error
    return audit_hyperparams(path)


def main(argv=None):
    """Command-line entry point (see the module docstring).

    ``argv``: the command line's words (default ``sys.argv[1:]``).

    Example
    -------
    >>> path = str(getfixture("tmpdir")) + "/hyperparams.yaml"
    >>> _ = open(path, "w").write("layer: !new:torch.nn.Linear [2, 3]\\n")
    >>> main(["audit", path])
    ok  !new:torch.nn.Linear
    1 tag(s), 0 flagged
    0
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    push = commands.add_parser("push", help="upload an export folder")
    push.add_argument("export_folder")
    push.add_argument("repo_id")
    push.add_argument("--private", action="store_true")
    audit = commands.add_parser(
        "audit", help="list what a hyperparams.yaml would call"
    )
    audit.add_argument("source", help="repo id, folder or yaml file")
    args = parser.parse_args(argv)
    if args.command == "push":
        url = push_to_hub(args.export_folder, args.repo_id, args.private)
        print(f"pushed {args.export_folder} to {url}")
        return 0
    entries = audit_model(args.source)
    for entry in entries:
        mark = "ok  " if entry.allowed else "FLAG"
        print(f"{mark} {entry.tag}{entry.target}")
    flagged = [e for e in entries if not e.allowed]
    print(f"{len(entries)} tag(s), {len(flagged)} flagged")
    return 1 if flagged else 0


if __name__ == "__main__":
    run_command(
        main, (FileNotFoundError, FileExistsError, RuntimeError, ValueError)
    )
