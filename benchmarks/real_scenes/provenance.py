"""Where every clip comes from: ``provenance.tsv``, ``PROVENANCE.md`` and
the packages' copyright files in ``licenses/``; and the report of the
duplicate check that ``real_scenes_info.json`` keeps.
"""

import re
import shutil
from pathlib import Path

import numpy as np

from speechbrain_kd.tau_layout import write_lines

from .grouping import DUPLICATE_THRESHOLD, SAME_SOURCE
from .licences import LICENCE_URLS
from .scenes import sanitize


def _report_scores(scores, names):
    edges = np.round(np.arange(-0.1, 1.0001, 0.05), 2)
    cross = [s for (a, b), s in scores.items() if a[0] != b[0]]
    same = [s for (a, b), s in scores.items() if a[0] == b[0]]
    top = sorted(
        ((s, a, b) for (a, b), s in scores.items() if s >= 0.3),
        key=lambda t: (-t[0], t[1], t[2]),
    )
    return {
        "threshold": DUPLICATE_THRESHOLD,
        "pairs": len(scores),
        "histogram_all": _histogram(list(scores.values()), edges),
        "histogram_different_packages": _histogram(cross, edges),
        "max_different_packages": round(max(cross), 4) if cross else None,
        "p99_different_packages": (
            round(float(np.percentile(cross, 99)), 4) if cross else None
        ),
        "max_same_package": round(max(same), 4) if same else None,
        "pairs_at_least_0.3": [
            {
                "score": round(s, 4),
                "a": f"{a[0]}:{a[1]}",
                "b": f"{b[0]}:{b[1]}",
                "joined": s >= DUPLICATE_THRESHOLD,
                "same_group": names[a] == names[b],
            }
            for s, a, b in top
        ],
    }


def _histogram(values, edges):
    counts, _ = np.histogram(np.asarray(values, dtype=float), bins=edges)
    return [
        {"from": round(float(a), 2), "to": round(float(b), 2), "n": int(n)}
        for a, b, n in zip(edges[:-1], edges[1:], counts, strict=True)
    ]


def _md_cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def _write_provenance(folder, info, packages, sources, clips, rate):
    by_name = {spec["package"]: spec for spec in packages.values()}
    rows = []
    for clip in sorted(clips, key=lambda c: c["filename"]):
        short, _ = clip["key"]
        src = sources[clip["key"]]
        spec = packages[short]
        rows.append(
            "\t".join(
                [
                    clip["filename"],
                    clip["scene"],
                    clip["identifier"],
                    clip["split"],
                    spec["package"],
                    spec["version"],
                    src["path"],
                    src["licence"],
                    "; ".join(src["copyright"]),
                    f"{clip['start'] / rate:.3f}",
                    f"{clip['stop'] / rate:.3f}",
                ]
            )
        )
    write_lines(
        folder / "provenance.tsv",
        "filename\tscene_label\tidentifier\tsplit\tpackage\tversion\t"
        "source_path\tlicense\tcopyright\tstart_s\tend_s",
        rows,
    )

    options = info["options"]
    check = info["duplicate_check"]
    lines = [
        "# Provenance of this acoustic-scene set",
        "",
        "Built by `benchmarks/real_scenes` (speechbrain-kd) with "
        f"clips of {options['seconds']:g} s at {options['sample_rate']} Hz "
        f"(2 channels, 16-bit PCM), at most "
        f"{options['max_clips_per_source']} clips per source group, "
        f"{options['train_fraction']:g} of each scene's clips for training. "
        "Every clip is an excerpt of one recording from a Debian 12 "
        "package, resampled, mixed to two channels (mono duplicated, more "
        "than two: the first two) and cut; nothing else is changed, "
        "levels included. Each clip keeps the licence of its source; the "
        "credits below are those of the packages' copyright files "
        "(copied to `licenses/`).",
        "",
        "Per clip (package, version, path inside the package, licence, "
        "credit, start and end in seconds): `provenance.tsv`.",
        "",
        "## Packages",
        "",
        "| package | version | .deb SHA-256 | bytes |",
        "|---|---|---|---|",
    ]
    for name, entry in sorted(info["packages"].items()):
        lines.append(
            f"| {name} | {entry['version']} | `{entry['sha256']}` | "
            f"{entry['size']} |"
        )
    lines += [
        "",
        "From http://deb.debian.org/debian/ (pool paths in "
        "`real_scenes_info.json`).",
        "",
        "## Licences",
        "",
    ]
    for licence in sorted({sources[c["key"]]["licence"] for c in clips}):
        urls = [
            LICENCE_URLS[p]
            for p in re.split(r"\s+or\s+", licence)
            if p in LICENCE_URLS
        ]
        lines.append(f"- {licence}: {', '.join(urls) or 'see licenses/'}")
    if "0ad-data" in by_name:
        lines.append(
            "- 0 A.D. audio: `audio/LICENSE.txt` asks for credit to "
            '"Wildfire Games" with links to '
            "http://creativecommons.org/licenses/by-sa/3.0/ and "
            "http://www.wildfiregames.com/ (copied to licenses/)."
        )
    lines += [
        "",
        "## Source groups (recordings) and the duplicate check",
        "",
        "Files are one group (one TAU `identifier`, never on both sides of "
        "the split) when byte-identical, when their names differ only by a "
        "trailing number in one folder of one package and their credits "
        "are the same, when a copyright "
        "note says so, or when their audio matches: the normalised "
        "cross-correlation over time shifts of 5-s probes of log-mel "
        "fingerprints with slow level changes removed (gain- and "
        f"shift-invariant) at least {check['threshold']:.2f}. Of "
        f"{check['pairs']} file pairs, those from different packages "
        "(certainly different recordings) score at most "
        f"{check['max_different_packages']} (99th percentile "
        f"{check['p99_different_packages']}).",
        "",
        "| score | file | file | joined by audio | same group |",
        "|---|---|---|---|---|",
    ]
    for pair in check["pairs_at_least_0.3"]:
        lines.append(
            f"| {pair['score']:.3f} | {pair['a']} | {pair['b']} | "
            f"{'yes' if pair['joined'] else 'no'} | "
            f"{'yes' if pair['same_group'] else 'no'} |"
        )
    for package, pattern, reason in SAME_SOURCE:
        lines.append("")
        lines.append(f"By note: {package} `{pattern}`: {reason}.")
    lines += [
        "",
        "## Source files",
        "",
        "| identifier | scene | split | package | file | licence | "
        "copyright | note | clips |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    per_key = {}
    for clip in clips:
        per_key.setdefault(clip["key"], []).append(clip)
    for key in sorted(per_key, key=lambda k: (per_key[k][0]["filename"], k)):
        first = per_key[key][0]
        src = sources[key]
        spec = packages[key[0]]
        cells = [
            first["identifier"],
            first["scene"],
            first["split"],
            f"{spec['package']} {spec['version']}",
            f"`{src['path']}`",
            src["licence"],
            "; ".join(src["copyright"]),
            src["comment"][:300],
            len(per_key[key]),
        ]
        lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    lines += ["", "## Left out", ""]
    for scene, why in sorted(info["dropped_scenes"].items()):
        lines.append(f"- scene {scene}: {why} (needs 3 groups, 20 clips)")
    for entry in info["skipped_files"]:
        lines.append(f"- {entry}")
    write_lines(folder / "PROVENANCE.md", lines[0], lines[1:])


def _copy_licences(folder, packages, bases):
    target = folder / "licenses"
    target.mkdir(parents=True, exist_ok=True)
    for short, spec in sorted(packages.items()):
        base = bases[short]
        shutil.copyfile(
            base / spec["copyright"], target / f"{spec['package']}.copyright"
        )
        for note in spec["notes"]:
            inner = (
                f"{spec['container']}!/{note}" if spec["container"] else note
            )
            path = base.joinpath(*Path(inner).parts)
            if path.is_file():
                name = f"{spec['package']}_{sanitize(note)}.txt"
                shutil.copyfile(path, target / name)
