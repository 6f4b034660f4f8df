"""Licences and credits: the packages' Debian copyright files (DEP-5).

The last ``Files:`` stanza that matches a file gives its licence and
credit; files under a licence outside :data:`ALLOWED_LICENCES` are left
out.
"""

import re

ALLOWED_LICENCES = {
    "CC0",
    "CC0-1.0",
    "public-domain",
    "CC-BY-3.0",
    "CC-BY-4.0",
    "CC-BY-SA-3.0",
    "CC-BY-SA-3.0+",
    "CC-BY-SA-4.0",
    "GPL-2",
    "GPL-2+",
    "GPL-3",
    "GPL-3+",
}
LICENCE_URLS = {
    "CC0": "https://creativecommons.org/publicdomain/zero/1.0/",
    "CC0-1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
    "CC-BY-3.0": "https://creativecommons.org/licenses/by/3.0/",
    "CC-BY-4.0": "https://creativecommons.org/licenses/by/4.0/",
    "CC-BY-SA-3.0": "https://creativecommons.org/licenses/by-sa/3.0/",
    "CC-BY-SA-3.0+": "https://creativecommons.org/licenses/by-sa/3.0/",
    "CC-BY-SA-4.0": "https://creativecommons.org/licenses/by-sa/4.0/",
    "GPL-2": "https://www.gnu.org/licenses/old-licenses/gpl-2.0.html",
    "GPL-2+": "https://www.gnu.org/licenses/old-licenses/gpl-2.0.html",
    "GPL-3": "https://www.gnu.org/licenses/gpl-3.0.html",
    "GPL-3+": "https://www.gnu.org/licenses/gpl-3.0.html",
}


def parse_dep5(text):
    """The ``Files:`` stanzas of a machine-readable Debian copyright file.

    Returns
    -------
    list of dict
        ``files`` (list of patterns), ``copyright`` (list of lines),
        ``license`` (the short name), ``comment`` (text), in file order.

    Example
    -------
    >>> text = (
    ...     "Format: https://www.debian.org/doc/packaging-manuals/"
    ...     "copyright-format/1.0/\\n\\n"
    ...     "Files: *\\nCopyright: 2010 Team\\nLicense: GPL-2+\\n\\n"
    ...     "Files:\\n data/sfx/rain.ogg\\n data/sfx/wind.ogg\\n"
    ...     "Copyright:\\n 2009 Ann\\n 2011 Bob\\nLicense: CC-BY-3.0\\n"
    ...     "Comment: From soundbible.\\n"
    ... )
    >>> [s["files"] for s in parse_dep5(text)]
    [['*'], ['data/sfx/rain.ogg', 'data/sfx/wind.ogg']]
    >>> parse_dep5(text)[1]["copyright"], parse_dep5(text)[1]["license"]
    (['2009 Ann', '2011 Bob'], 'CC-BY-3.0')
    """
    stanzas = []
    for block in re.split(r"\n[ \t]*\n", text):
        fields, name = {}, None
        for line in block.splitlines():
            match = re.match(r"^([A-Za-z][A-Za-z0-9-]*):[ \t]*(.*)$", line)
            if match and not line[:1].isspace():
                name = match.group(1).lower()
                fields[name] = [match.group(2).rstrip()]
            elif name is not None and line[:1].isspace():
                fields[name].append(line.strip())
        if "files" not in fields:
            continue
        lines = [v for v in fields.get("copyright", []) if v and v != "."]
        comment = [v for v in fields.get("comment", []) if v and v != "."]
        stanzas.append(
            {
                "files": " ".join(fields["files"]).split(),
                "copyright": lines,
                "license": (fields.get("license") or [""])[0].strip(),
                "comment": " ".join(comment),
            }
        )
    return stanzas


def _dep5_match(path, pattern):
    regex = "".join(
        ".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern
    )
    return re.fullmatch(regex, path) is not None


def licence_for(stanzas, path):
    """The last ``Files:`` stanza that matches ``path`` (DEP-5 rules), or None.

    Example
    -------
    >>> stanzas = [
    ...     {"files": ["*"], "copyright": ["Team"], "license": "GPL-2+",
    ...      "comment": ""},
    ...     {"files": ["data/sfx/r?in.ogg"], "copyright": ["Ann"],
    ...      "license": "CC0", "comment": ""},
    ... ]
    >>> licence_for(stanzas, "data/sfx/rain.ogg")["license"]
    'CC0'
    >>> licence_for(stanzas, "data/sfx/wind.ogg")["license"]
    'GPL-2+'
    """
    found = None
    for stanza in stanzas:
        if any(_dep5_match(path, p) for p in stanza["files"]):
            found = stanza
    return found


def licence_ok(expression):
    """Whether a DEP-5 licence expression offers an allowed licence.

    Example
    -------
    >>> licence_ok("CC-BY-SA-3.0 or GPL-3"), licence_ok("Proprietary")
    (True, False)
    """
    terms = re.split(r"\s+and\s+", expression.strip())
    return all(
        any(choice in ALLOWED_LICENCES for choice in re.split(r"\s+or\s+", t))
        for t in terms
    )
