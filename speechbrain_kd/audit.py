"""What a HyperPyYAML file would import or call, found without loading it.

A model's ``hyperparams.yaml`` is code: HyperPyYAML's ``!new:``,
``!name:``, ``!apply:`` and ``!module:`` import and call what they name.
:func:`audit_hyperparams` parses the file (never loads it) and lists every
such target, flagging anything outside SpeechBrain, speechbrain-kd and
``torch.nn`` and SpeechBrain's own ways to fetch or run other code.
"""

from typing import NamedTuple

# What an exported hyperparams.yaml may import or call. torch.nn only, not
# all of torch: torch.hub.load runs downloaded code and torch.load can
# unpickle anything.
ALLOWED_PREFIXES = ("speechbrain.", "speechbrain_kd.", "torch.nn.")

# Parts of SpeechBrain that fetch or run other code (another hub model, a
# shipped Python file, a shell command): never allowed.
DENIED_PARTS = (
    "foreign_class",
    "from_hparams",
    "speechbrain.utils.superpowers",
    "speechbrain.utils.fetching",
    "speechbrain.utils.data_utils.download_file",
)

# Tags that import or call the dotted name after the colon.
CALLING_TAGS = ("!new:", "!name:", "!apply:", "!module:")

# HyperPyYAML tags that call nothing by themselves.
INERT_TAGS = ("!ref", "!copy", "!tuple")


class AuditEntry(NamedTuple):
    """One tag of a HyperPyYAML file (see :func:`audit_hyperparams`).

    Example
    -------
    >>> AuditEntry("!new:", "torch.nn.Linear", True).target
    'torch.nn.Linear'
    """

    tag: str
    target: str
    allowed: bool


def _walk(node):
    yield node
    if isinstance(node.value, list):
        for item in node.value:
            for child in item if isinstance(item, tuple) else (item,):
                yield from _walk(child)


def _allowed(target):
    return target.startswith(ALLOWED_PREFIXES) and not any(
        part in target for part in DENIED_PARTS
    )


def audit_hyperparams(path):
    """List what a HyperPyYAML file would import or call when loaded.

    The file is parsed (never loaded) and every tag is listed, after YAML
    resolves ``%TAG`` shorthands, so a disguised ``!new:`` is caught too.
    ``!new:``, ``!name:``, ``!apply:`` and ``!module:`` targets are allowed
    when they lie under ``speechbrain``, ``speechbrain_kd`` or ``torch.nn``
    and are not one of SpeechBrain's ways to fetch or run other code
    (``foreign_class``, ``from_hparams``, ``superpowers``, ``fetching``).
    Any other tag (``!include:``, ``!applyref:``, ``!!python/...``) is
    flagged. This is a first filter, not a sandbox: read what it lists.

    Arguments
    ---------
    path : str or pathlib.Path

    Returns
    -------
    list of AuditEntry
        ``(tag, target, allowed)`` in file order: ``("!new:",
        "torch.nn.Linear", True)``; a tag that is not one of the four
        calling tags has an empty target and is never allowed.

    Example
    -------
    >>> path = getfixture("tmpdir") + "/h.yaml"
    >>> text = "a: !new:torch.nn.Linear [1, 1]\\nb: !apply:os.system [ls]\\n"
    >>> _ = open(path, "w").write(text)
    >>> [(e.target, e.allowed) for e in audit_hyperparams(path)]
    [('torch.nn.Linear', True), ('os.system', False)]
    """
    import ruamel.yaml

    with open(path, encoding="utf-8") as f:
        try:
            root = ruamel.yaml.YAML().compose(f)
        except ruamel.yaml.YAMLError as error:
            raise ValueError(f"{path} is not valid YAML: {error}") from error
    entries = []
    for node in _walk(root) if root is not None else ():
        tag = str(getattr(node.tag, "value", node.tag))
        if tag.startswith("tag:yaml.org,2002:") and "python/" not in tag:
            continue  # plain str, int, map, ...
        if tag.startswith(INERT_TAGS) and ":" not in tag:
            continue
        kind = next((t for t in CALLING_TAGS if tag.startswith(t)), None)
        if kind is None:
            entries.append(AuditEntry(tag, "", False))
        else:
            target = tag[len(kind) :]
            entries.append(AuditEntry(kind, target, _allowed(target)))
    return entries
