"""The build: packages -> sources -> groups -> clips -> split -> layout.

:func:`build` runs the steps of the other modules in order and writes
``real_scenes_info.json`` (options, package versions and SHA-256, scores,
counts per scene and split). ``OUT`` is built in a temporary folder beside
it and renamed at the end: it is there whole or not at all; a finished
``OUT`` with the same options is left as it is.
"""

import json
import shutil
import tempfile
import time
from pathlib import Path

from .audio import clip_windows, read, resample, to_stereo
from .grouping import (
    DUPLICATE_THRESHOLD,
    SAME_SOURCE,
    _group_names,
    _links,
    fingerprints,
    group_sources,
)
from .layout import INFO_FILE, _read_info, _replace, tau_filename, write_set
from .packages import FORMAT_VERSION, PACKAGES, extract_package
from .provenance import _copy_licences, _report_scores, _write_provenance
from .scenes import SCENE_RULES, _list_sources
from .split import assign_split, choose_clips


def check_options(seconds, sample_rate, max_clips_per_source, train_fraction):
    """Refuse options that cannot give a sensible set.

    Example
    -------
    >>> check_options(3.0, 16000, 20, 0.7)
    >>> check_options(3.0, 16000, 20, 1.0)
    Traceback (most recent call last):
    ...
    ValueError: train_fraction must be in (0, 1), got 1.0
    """
    if not 0.5 <= seconds <= 10:
        raise ValueError(f"seconds must be in [0.5, 10], got {seconds}")
    if not 8000 <= sample_rate <= 48000:
        raise ValueError(
            f"sample_rate must be in [8000, 48000], got {sample_rate}"
        )
    if max_clips_per_source < 1:
        raise ValueError(
            f"max_clips_per_source must be >= 1, got {max_clips_per_source}"
        )
    if not 0 < train_fraction < 1:
        raise ValueError(
            f"train_fraction must be in (0, 1), got {train_fraction}"
        )


def build(
    out,
    cache=None,
    seconds=3.0,
    sample_rate=16000,
    max_clips_per_source=20,
    train_fraction=0.7,
    packages=None,
    rules=SCENE_RULES,
    same_source=SAME_SOURCE,
):
    """Build the set in ``out`` (see the package's docstring).

    ``packages`` (default :data:`PACKAGES`), ``rules`` and ``same_source``
    can be replaced, e.g. by synthetic packages in tests. Returns the
    summary written to ``real_scenes_info.json``. Tested on synthetic
    packages in ``tests/unittests/test_real_scenes.py`` (the real ones are
    a 2.9 GB download).
    """
    started = time.monotonic()
    check_options(seconds, sample_rate, max_clips_per_source, train_fraction)
    packages = PACKAGES if packages is None else packages
    out = Path(out).absolute()
    cache = Path(cache) if cache else out.with_name(out.name + ".cache")
    options = {
        "format_version": FORMAT_VERSION,
        "seconds": float(seconds),
        "sample_rate": int(sample_rate),
        "max_clips_per_source": int(max_clips_per_source),
        "train_fraction": float(train_fraction),
    }
    previous = _read_info(out)
    if previous is not None and previous.get("options") == options:
        print(f"{out} is already built with these options", flush=True)
        return previous
    if out.exists() and previous is None and any(out.iterdir()):
        raise FileExistsError(
            f"{out} exists and is not a set this script built: not touched"
        )

    bases = {
        short: extract_package(short, spec, cache, rules)
        for short, spec in sorted(packages.items())
    }
    sources, skipped = _list_sources(packages, bases, rules, seconds)
    if not sources:
        raise ValueError("no usable sound file: check the rules")
    print(f"{len(sources)} source files; fingerprinting", flush=True)

    prints, windows = {}, {}
    for key in sorted(sources):
        audio, rate = read(sources[key]["file"])
        prints[key] = fingerprints(audio.mean(axis=1), rate)
        clip_audio = to_stereo(resample(audio, rate, sample_rate))
        windows[key] = clip_windows(clip_audio, sample_rate, seconds)
    groups, scores = group_sources(
        prints, DUPLICATE_THRESHOLD, _links(sources, same_source)
    )
    names = _group_names(groups)
    score_report = _report_scores(scores, names)

    chosen, counts, dropped = choose_clips(
        windows,
        {key: source["scene"] for key, source in sources.items()},
        names,
        max_clips_per_source,
    )
    if len(counts) < 2:
        raise ValueError(f"fewer than two scenes are left ({dropped})")
    side = assign_split(counts, train_fraction)

    clips = []
    for (scene, group), items in sorted(chosen.items()):
        if scene not in counts:
            continue
        for segment, (key, start, stop) in enumerate(items):
            clips.append(
                {
                    "filename": tau_filename(scene, group, segment),
                    "scene": scene,
                    "identifier": group,
                    "split": side[group],
                    "key": key,
                    "start": start,
                    "stop": stop,
                }
            )

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        files = {key: source["file"] for key, source in sources.items()}
        info = {
            "options": options,
            "packages": _pins(packages),
            "duplicate_check": score_report,
            "groups": {
                names[members[0]]: {
                    "scene": sorted({sources[k]["scene"] for k in members}),
                    "files": [f"{k[0]}:{k[1]}" for k in members],
                }
                for members in groups
            },
            "scenes": _per_scene(clips),
            "counts": write_set(tmp, clips, files, sample_rate),
            "clips": len(clips),
            "source_files": len(sources),
            "source_files_used": len({clip["key"] for clip in clips}),
            "dropped_scenes": dropped,
            "skipped_files": skipped,
            "scene_groups": {s: sorted(g) for s, g in sorted(counts.items())},
        }
        _write_provenance(tmp, info, packages, sources, clips, sample_rate)
        _copy_licences(tmp, packages, bases)
        (tmp / INFO_FILE).write_text(
            json.dumps(info, indent=1, sort_keys=True) + "\n", "utf-8"
        )
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _print_summary(info, time.monotonic() - started)
    return info


def _pins(packages):
    """What pins each package: version, SHA-256, size, pool path."""
    return {
        spec["package"]: {
            "version": spec["version"],
            "sha256": spec["sha256"],
            "size": spec["size"],
            "pool": spec["pool"],
        }
        for _, spec in sorted(packages.items())
    }


def _per_scene(clips):
    """Clips and groups on each side, per scene (scenes sorted)."""
    per_scene = {}
    for clip in clips:
        entry = per_scene.setdefault(
            clip["scene"],
            {"train": 0, "evaluate": 0, "groups_train": [], "groups_eval": []},
        )
        entry[clip["split"]] += 1
        side = "groups_train" if clip["split"] == "train" else "groups_eval"
        if clip["identifier"] not in entry[side]:
            entry[side].append(clip["identifier"])
    return {scene: per_scene[scene] for scene in sorted(per_scene)}


def _print_summary(info, elapsed):
    check = info["duplicate_check"]
    print("duplicate check: similarity of every pair of files")
    print(
        f"  threshold {check['threshold']:.2f}; different packages: max "
        f"{check['max_different_packages']}, p99 "
        f"{check['p99_different_packages']}"
    )
    print("  histogram (all pairs | different packages):")
    for a, b in zip(
        check["histogram_all"],
        check["histogram_different_packages"],
        strict=True,
    ):
        if a["n"] or b["n"]:
            print(
                f"   [{a['from']:5.2f}, {a['to']:5.2f})  {a['n']:5d} | "
                f"{b['n']:5d}"
            )
    for name, group in info["groups"].items():
        if len(group["files"]) > 1:
            print(f"  group {name}: {', '.join(group['files'])}")
    print("scenes (clips train/evaluate, groups train/evaluate):")
    for scene, entry in info["scenes"].items():
        print(
            f"  {scene:14s} {entry['train']:3d}/{entry['evaluate']:3d}  "
            f"{len(entry['groups_train'])}/{len(entry['groups_eval'])}"
        )
    for scene, why in info["dropped_scenes"].items():
        print(f"  dropped {scene}: {why}")
    print(f"{info['clips']} clips {info['counts']} in {elapsed:.0f} s")
