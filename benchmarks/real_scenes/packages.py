"""The Debian packages: pinned, fetched once, only the wanted files taken.

The ``.deb`` files (about 2.9 GB, pinned by version and SHA-256 in
:data:`PACKAGES`) are fetched with ``apt-get download`` (or, without apt,
from ``deb.debian.org`` and then ``snapshot.debian.org``) into a cache.
Only the paths that the scene rules name are taken out of them (0 A.D.'s
3.2 GB zip is spooled to a temporary file for that, then deleted), so a
rerun reads neither the network nor the large archives again. Python's
``tarfile``, ``lzma`` and ``zipfile`` do the unpacking; ``dpkg`` is not
needed.
"""

import contextlib
import fnmatch
import gzip
import io
import json
import lzma
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from speechbrain_kd.files import file_sha256

from .scenes import SCENE_RULES, sanitize

FORMAT_VERSION = 1
SNAPSHOT = "20250520T000000Z"  # the Debian snapshot these versions are in
MIRRORS = (
    "http://deb.debian.org/debian/",
    f"http://snapshot.debian.org/archive/debian/{SNAPSHOT}/",
)

# The packages, pinned. ``root`` is the folder of the sounds inside the
# package or, with ``container``, inside that zip (``.pk3`` is a zip);
# ``upstream`` turns a path of the package into the path its Debian
# copyright file uses (``Files:`` patterns are relative to the upstream
# source tree).
PACKAGES = {
    "0ad": {
        "package": "0ad-data",
        "version": "0.0.26-1",
        "pool": "pool/main/0/0ad-data/0ad-data_0.0.26-1_all.deb",
        "size": 1377557908,
        "sha256": (
            "53745ae74d05bccf6783400fa98f3932b21729ab9d2e86151aa2c331c3455178"
        ),
        "copyright": "usr/share/doc/0ad-data/copyright",
        "container": "usr/share/games/0ad/mods/public/public.zip",
        "root": "audio/ambient/",
        "upstream": ("", "binaries/data/mods/public/"),
        "notes": ["audio/LICENSE.txt"],
    },
    "redeclipse": {
        "package": "redeclipse-data",
        "version": "1.6.0-1",
        "pool": "pool/main/r/redeclipse-data/redeclipse-data_1.6.0-1_all.deb",
        "size": 862260812,
        "sha256": (
            "ada26453d3100bd61154ce20a699352f0b48bb29f8505f477ebdcb612f71ab42"
        ),
        "copyright": "usr/share/doc/redeclipse-data/copyright",
        "container": None,
        "root": "usr/share/games/redeclipse/data/sounds/ambience/",
        "upstream": ("usr/share/games/redeclipse/", ""),
        "notes": [],
    },
    "stk": {
        "package": "supertuxkart-data",
        "version": "1.4+dfsg-2",
        "pool": (
            "pool/main/s/supertuxkart/supertuxkart-data_1.4+dfsg-2_all.deb"
        ),
        "size": 627742860,
        "sha256": (
            "568d69cda50dc8ad1facb89514bd14953dfca736fdb83c49ae330b0aa7dd2364"
        ),
        "copyright": "usr/share/doc/supertuxkart-data/copyright",
        "container": None,
        "root": "usr/share/games/supertuxkart/data/sfx/",
        "upstream": ("usr/share/games/supertuxkart/", ""),
        "notes": [],
    },
    "ufoai": {
        "package": "ufoai-sound",
        "version": "2.5-2",
        "pool": "pool/main/u/ufoai-music/ufoai-sound_2.5-2_all.deb",
        "size": 18681226,
        "sha256": (
            "0224308c10e1265581d1829f19eaef031175390fd0eafeb4a1d558ac6561ed4e"
        ),
        "copyright": "usr/share/doc/ufoai-sound/copyright",
        "container": "usr/share/games/ufoai/base/0snd.pk3",
        "root": "sound/ambience/",
        "upstream": ("", "base/"),
        "notes": [],
    },
}


def fetch_deb(spec, cache):
    """The ``.deb`` of ``spec`` in ``cache/debs``, downloaded when missing.

    ``apt-get download PACKAGE=VERSION`` first; without apt, or when it
    fails, the pinned pool path on each of :data:`MIRRORS`. The file must
    have the pinned SHA-256. No example: it needs the network.
    """
    folder = Path(cache) / "debs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / Path(spec["pool"]).name
    if path.is_file() and file_sha256(path) == spec["sha256"]:
        return path
    errors = []
    with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as tmp:
        tmp = Path(tmp)
        target = f"{spec['package']}={spec['version']}"
        print(f"downloading {target} ({spec['size'] / 1e6:.0f} MB)", flush=True)
        try:
            subprocess.run(
                ["apt-get", "download", target],
                cwd=tmp,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            got = sorted(tmp.glob("*.deb"))
            if len(got) != 1:
                raise OSError(f"apt-get download gave {got}")
            _accept(got[0], spec, path)
            return path
        except (OSError, subprocess.CalledProcessError, ValueError) as error:
            errors.append(f"apt-get download: {error}")
        for mirror in MIRRORS:
            url = mirror + spec["pool"]
            part = tmp / "part.deb"
            try:
                with urllib.request.urlopen(url, timeout=60) as response:
                    with open(part, "wb") as f:
                        shutil.copyfileobj(response, f, 1 << 20)
                _accept(part, spec, path)
                return path
            except (OSError, ValueError) as error:
                errors.append(f"{url}: {error}")
    raise RuntimeError(
        f"could not fetch {spec['package']} {spec['version']}:\n  "
        + "\n  ".join(errors)
    )


def _accept(candidate, spec, path):
    digest = file_sha256(candidate)
    if digest != spec["sha256"]:
        raise ValueError(
            f"{candidate.name}: SHA-256 {digest}, expected {spec['sha256']}"
        )
    os.replace(candidate, path)


class _Limited(io.RawIOBase):
    """Reads at most ``size`` bytes of ``f`` from where it stands."""

    def __init__(self, f, size):
        self.f, self.left = f, size

    def readable(self):
        return True

    def readinto(self, buffer):
        n = min(len(buffer), self.left)
        data = self.f.read(n) if n else b""
        buffer[: len(data)] = data
        self.left -= len(data)
        return len(data)


@contextlib.contextmanager
def deb_data_tar(deb):
    """Stream the ``data.tar`` of a ``.deb`` (an ``ar`` archive) as a tar.

    ``.xz`` and ``.gz`` members are read (bookworm uses them); the tar is
    opened in stream mode (``r|``): members in order, once.

    Example
    -------
    >>> folder = Path(getfixture("tmpdir"))
    >>> data = io.BytesIO()
    >>> with tarfile.open(fileobj=data, mode="w:gz") as tar:
    ...     info = tarfile.TarInfo("./usr/share/x.txt")
    ...     info.size = 2
    ...     tar.addfile(info, io.BytesIO(b"hi"))
    >>> body = data.getvalue()
    >>> def ar_header(name, size):
    ...     return f"{name:<16}{0:<12}{0:<6}{0:<6}{644:<8}{size:<10}`\\n"
    >>> deb = folder / "x.deb"
    >>> _ = deb.write_bytes(
    ...     b"!<arch>\\n" + ar_header("debian-binary", 4).encode()
    ...     + b"2.0\\n" + ar_header("data.tar.gz", len(body)).encode() + body
    ... )
    >>> with deb_data_tar(deb) as tar:
    ...     print([m.name for m in tar])
    ['./usr/share/x.txt']
    """
    with open(deb, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            raise ValueError(f"{deb} is not a .deb (ar) archive")
        while True:
            header = f.read(60)
            if len(header) < 60:
                raise ValueError(f"{deb} has no data.tar member")
            name = header[:16].decode("ascii").strip().rstrip("/")
            size = int(header[48:58].decode("ascii").strip())
            if name.startswith("data.tar"):
                break
            f.seek(size + (size & 1), os.SEEK_CUR)
        raw = io.BufferedReader(_Limited(f, size), 1 << 20)
        if name.endswith(".xz"):
            stream = lzma.open(raw)
        elif name.endswith(".gz"):
            stream = gzip.open(raw)
        elif name == "data.tar":
            stream = raw
        else:
            raise ValueError(f"{deb}: {name} is not supported (xz, gz)")
        with stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            yield tar


def wanted_paths(short, spec, rules=SCENE_RULES):
    """The in-package patterns to take out of a package: its sound rules,
    its copyright file and licence notes. Container members are written
    ``container!/member``.

    Example
    -------
    >>> wanted_paths("ufoai", PACKAGES["ufoai"])[:2]
    ['usr/share/doc/ufoai-sound/copyright', \
'usr/share/games/ufoai/base/0snd.pk3!/sound/ambience/arcticwind.ogg']
    """
    inner = [spec["root"] + p for k, p, _ in rules if k == short]
    inner += list(spec["notes"])
    if spec["container"]:
        inner = [f"{spec['container']}!/{p}" for p in inner]
    return [spec["copyright"], *sorted(set(inner))]


def _safe_target(folder, name):
    parts = Path(name).parts
    if not parts or Path(name).is_absolute() or ".." in parts:
        raise ValueError(f"unsafe path {name!r} in a package")
    return folder.joinpath(*parts)


def _write_member(source, target):
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as out:
        shutil.copyfileobj(source, out, 1 << 20)


def extract_package(short, spec, cache, rules=SCENE_RULES):
    """Take the wanted files out of a package into ``cache/files``.

    Reuses an earlier extraction of the same ``.deb`` and patterns (its
    ``.complete.json`` says which); otherwise fetches the ``.deb``
    (:func:`fetch_deb`) and extracts into a temporary folder renamed at the
    end. A container member (zip) is spooled to a temporary file, read,
    and deleted. Tested on a synthetic package in
    ``tests/unittests/test_real_scenes.py``.

    Returns
    -------
    pathlib.Path
        The folder that mirrors the package's paths (``container!/``
        for members of a container).
    """
    files = Path(cache) / "files"
    base = files / f"{short}_{sanitize(spec['version'])}"
    patterns = wanted_paths(short, spec, rules)
    want = {
        "format": FORMAT_VERSION,
        "sha256": spec["sha256"],
        "patterns": patterns,
    }
    marker = base / ".complete.json"
    if marker.is_file() and json.loads(marker.read_text()) == want:
        return base
    deb = fetch_deb(spec, cache)
    print(f"extracting from {deb.name}", flush=True)
    files.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=files, prefix=f".{short}-"))
    try:
        _extract(deb, spec, patterns, tmp)
        (tmp / ".complete.json").write_text(json.dumps(want, indent=1))
        if base.exists():
            shutil.rmtree(base)
        os.replace(tmp, base)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return base


def _extract(deb, spec, patterns, dest):
    def wanted(name):
        return any(fnmatch.fnmatchcase(name, p) for p in patterns)

    container = spec["container"]
    found_container = False
    with deb_data_tar(deb) as tar:
        for member in tar:
            name = member.name.removeprefix("./")
            if name == container and member.isfile():
                found_container = True
                with tempfile.TemporaryFile(dir=dest) as spool:
                    shutil.copyfileobj(tar.extractfile(member), spool, 1 << 20)
                    spool.seek(0)
                    with zipfile.ZipFile(spool) as zf:
                        for info in sorted(zf.infolist(), key=_zip_name):
                            inner = f"{name}!/{info.filename}"
                            if info.is_dir() or not wanted(inner):
                                continue
                            with zf.open(info) as source:
                                _write_member(source, _safe_target(dest, inner))
            elif wanted(name):
                if not member.isfile():
                    print(f"  skipped {name}: not a plain file", flush=True)
                    continue
                _write_member(tar.extractfile(member), _safe_target(dest, name))
    if container and not found_container:
        raise ValueError(f"{deb} has no {container}")
    if not (dest / spec["copyright"]).is_file():
        raise ValueError(f"{deb} has no {spec['copyright']}")


def _zip_name(info):
    return info.filename
