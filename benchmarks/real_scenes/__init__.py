"""A small acoustic-scene set cut from real field recordings in Debian.

The synthetic demo set (``speechbrain_kd.demo_data``) checks the code; this
script builds a set of *real* recordings that is small enough for a CPU and
still says something about a model: rain, wind, thunder, birds, insects,
running water, surf and crowds, recorded by people and released under open
licences inside the data packages of four free games in Debian 12
"bookworm":

- ``0ad-data`` 0.0.26-1 (0 A.D., Wildfire Games, CC-BY-SA-3.0): the
  ambiences ``audio/ambient/`` inside ``mods/public/public.zip``;
- ``redeclipse-data`` 1.6.0-1 (Red Eclipse): ``data/sounds/ambience/``
  (CC-BY-SA-3.0 and CC-BY-3.0, several Freesound recordists);
- ``ufoai-sound`` 2.5-2 (UFO: Alien Invasion): ``sound/ambience/`` inside
  ``base/0snd.pk3`` (CC-BY-SA-3.0, GPL-2, GPL-2+);
- ``supertuxkart-data`` 1.4+dfsg-2 (SuperTuxKart): ``data/sfx/`` (CC0,
  CC-BY-3.0).

Usage (or ``python -m benchmarks.real_scenes`` from the repository root)::

    python benchmarks/real_scenes OUT [--cache DIR] [--seconds 3]
        [--sample_rate 16000] [--max_clips_per_source 20]
        [--train_fraction 0.7]

No audio lives in the repository, and CI never runs this script: the ``.deb``
files (about 2.9 GB, pinned by version and SHA-256 in
:data:`.packages.PACKAGES`) are fetched at run time with ``apt-get download``
(or, without apt, from ``deb.debian.org`` and then ``snapshot.debian.org``) into
``--cache`` (default ``OUT.cache``). Only the paths that the rules below name
are taken out of them (0 A.D.'s 3.2 GB zip is spooled to a temporary file for
that, then deleted), so a rerun reads neither the network nor the large archives
again. Python's ``tarfile``, ``lzma`` and ``zipfile`` do the unpacking; ``dpkg``
is not needed.

Construction
------------
1. *Scenes.* :data:`.scenes.SCENE_RULES` is the table that maps file-name
   patterns to scenes, first match wins; files that no rule names are not used.
   The Debian copyright file of each package (machine-readable, DEP-5) gives the
   licence and the credit of every file, last matching stanza wins; files under
   a licence outside :data:`.licences.ALLOWED_LICENCES` would be left out. Files
   that libsndfile cannot decode, or that are shorter than one clip, are left
   out and listed.
2. *Sources.* Game data often carries near-copies: two mixes of one rain
   recording, loops cut from one take, the same file under two names. Files are
   joined into one *source group* when (a) they are byte-identical, (b) their
   names differ only by a trailing number in one folder of one package and the
   copyright file credits them alike (``rain_11`` and ``rain_12``, ``fire03``
   and ``fire04``: loops of one take that need not overlap, so no audio test can
   see them; ``exotic-birds`` and ``exotic-birds_2`` have two recordists and
   stay apart), (c) :data:`.grouping.SAME_SOURCE` says so from the copyright
   notes, or (d) their audio matches: :func:`.grouping.similarity` is the
   highest normalised cross-correlation, over all time shifts (sub-frame ones
   included), of 5-s probes of one file's log-mel fingerprint (24 bands, 20-ms
   frames, 16 kHz, slow level changes and digital silence removed) against the
   other's. Gain, EQ per band, re-encoding, resampling and time shifts leave it
   near 1 (0.96 to 1.00 for the copies found here); in the default build the
   2573 pairs of files from *different* packages, certainly different
   recordings, score at most 0.32 (99th percentile 0.23). Pairs at or above
   :data:`.grouping.DUPLICATE_THRESHOLD` (0.40, above all of those with a
   margin) are joined, transitively. The script prints the score distribution,
   and ``real_scenes_info.json`` keeps it. A group is one TAU ``identifier``
   (the "recording location"), ``<package>_<name>``.
3. *Clips.* Every file is mixed to two channels (mono duplicated, more than
   two: the first two), resampled (``scipy.signal.resample_poly``) and cut
   into non-overlapping clips of ``--seconds`` from its start. Clips quieter
   than -75 dBFS RMS, or 30 dB below the loudest clip of their file (the
   gaps between thunder claps, fade-outs), are skipped. At most
   ``--max_clips_per_source`` clips are kept per group, evenly spaced over
   its files, so that no long recording dominates a scene. Levels are those
   of the packages (no normalisation); samples are written as 16-bit PCM.
   Scenes with fewer than 3 groups or 20 clips are dropped and listed.
4. *Split.* Whole groups go to ``fold1_train.csv`` or
   ``fold1_evaluate.csv``: for each scene the assignment whose share of
   training clips is nearest ``--train_fraction`` with both sides non-empty
   (all assignments tried, groups ordered by the SHA-256 of their name to
   break ties). So no recording is on both sides and every scene is on
   both.

Layout (exactly the TAU Urban Acoustic Scenes 2019 development set's, so
``recipes/DCASE2019/dcase2019_prepare.py`` reads it unchanged)::

    OUT/audio/<scene>-<identifier>-<segment>-a.wav
    OUT/meta.csv             filename scene_label identifier source_label
    OUT/evaluation_setup/fold1_train.csv     filename scene_label
    OUT/evaluation_setup/fold1_evaluate.csv  filename scene_label
    OUT/evaluation_setup/fold1_test.csv      filename

(tab-separated, with headers), plus ``PROVENANCE.md`` (construction,
licences, duplicate groups, one row per source file), ``provenance.tsv``
(one row per clip: package, version, path inside the package, licence,
credit, start and end in seconds), ``licenses/`` (the packages' copyright
files) and ``real_scenes_info.json`` (options, package versions and
SHA-256, scores, counts per scene and split).

The same options give byte-identical files (sorted lists, fixed rules, no
time stamps, no randomness). ``OUT`` is built in a temporary folder beside
it and renamed at the end: it is there whole or not at all; a finished
``OUT`` with the same options is left as it is.

Every clip keeps the licence of its source file; CC-BY and CC-BY-SA ask
for the credit that ``PROVENANCE.md`` and ``provenance.tsv`` give, and
CC-BY-SA and GPL ask that what is shared be shared alike.

Modules, one a step: :mod:`.packages` (fetch and extract the ``.deb``
files), :mod:`.scenes` (the rules; the usable source files),
:mod:`.licences` (DEP-5 copyright files), :mod:`.audio` (channels, rate,
levels, windows), :mod:`.grouping` (fingerprints, similarity, source
groups), :mod:`.split` (clips per group, the split), :mod:`.layout` (the
TAU layout, through :mod:`speechbrain_kd.tau_layout`, the writer of the
demo set), :mod:`.provenance` and :mod:`.build` (the steps in order).
"""

from .build import build, check_options

__all__ = ["build", "check_options"]
