"""Which clips each source group gives, and which side each group is on.

At most ``max_clips_per_source`` clips are kept per group, evenly spaced
over its files, so that no long recording dominates a scene; scenes with
fewer than 3 groups or 20 clips are dropped. Whole groups then go to
training or evaluation: for each scene the assignment whose share of
training clips is nearest ``train_fraction`` with both sides non-empty.
"""

import hashlib
import itertools

MIN_GROUPS_PER_SCENE = 3
MIN_CLIPS_PER_SCENE = 20
EXHAUSTIVE_SPLIT_GROUPS = 16


def select_evenly(items, cap):
    """At most ``cap`` items, evenly spaced over the sequence, in order.

    Example
    -------
    >>> select_evenly(list(range(10)), 3)
    [1, 5, 8]
    >>> select_evenly("ab", 5)
    ['a', 'b']
    """
    items = list(items)
    if len(items) <= cap:
        return items
    return [items[(2 * i + 1) * len(items) // (2 * cap)] for i in range(cap)]


def choose_clips(windows, scenes, names, cap):
    """The clips of each (scene, group), and the scenes big enough to keep.

    A group's windows are taken in the order of its files' keys, then of
    time, and at most ``cap`` of them kept, evenly spaced
    (:func:`select_evenly`). Scenes with fewer than
    :data:`MIN_GROUPS_PER_SCENE` groups or :data:`MIN_CLIPS_PER_SCENE`
    clips are dropped.

    Arguments
    ---------
    windows : dict
        File key (sortable) -> ``(start, stop, level)`` of its windows.
    scenes, names : dict
        File key -> its scene; file key -> the name of its source group.
    cap : int
        Clips per group at most.

    Returns
    -------
    chosen : dict
        ``(scene, group)`` -> list of ``(key, start, stop)``, every scene.
    counts : dict
        scene -> {group: number of clips}, the scenes kept.
    dropped : dict
        scene -> why it was dropped.

    Example
    -------
    >>> windows = {k: [(i, i + 1, -20.0) for i in range(10)] for k in "abcd"}
    >>> scenes = dict(a="rain", b="rain", c="rain", d="wind")
    >>> names = dict(a="ga", b="gb", c="gc", d="gd")
    >>> chosen, counts, dropped = choose_clips(windows, scenes, names, 8)
    >>> counts
    {'rain': {'ga': 8, 'gb': 8, 'gc': 8}}
    >>> dropped
    {'wind': '1 source groups, 8 clips'}
    >>> chosen[("rain", "ga")][:2]
    [('a', 0, 1), ('a', 1, 2)]
    """
    chosen = {}
    for key in sorted(windows):
        for start, stop, _ in windows[key]:
            chosen.setdefault((scenes[key], names[key]), []).append(
                (key, start, stop)
            )
    for pair, items in chosen.items():
        chosen[pair] = select_evenly(items, cap)
    counts, dropped = {}, {}
    for (scene, group), items in sorted(chosen.items()):
        counts.setdefault(scene, {})[group] = len(items)
    for scene in sorted(counts):
        n_groups, n_clips = len(counts[scene]), sum(counts[scene].values())
        if n_groups < MIN_GROUPS_PER_SCENE or n_clips < MIN_CLIPS_PER_SCENE:
            dropped[scene] = f"{n_groups} source groups, {n_clips} clips"
            del counts[scene]
    return chosen, counts, dropped


def _rank(name):
    return hashlib.sha256(str(name).encode()).hexdigest(), str(name)


def assign_split(counts, train_fraction):
    """Put whole groups on the training or the evaluation side.

    For each scene (in sorted order), among the assignments of its groups
    that leave both sides non-empty, the one whose share of training clips
    is nearest ``train_fraction``; ties go to the assignment that trains on
    the groups first in SHA-256 order. A group seen in an earlier scene
    keeps its side. Over 16 free groups in a scene, a greedy pass in that
    order replaces the search.

    Arguments
    ---------
    counts : dict
        scene -> {group: number of clips}.
    train_fraction : float

    Returns
    -------
    dict
        group -> ``"train"`` or ``"evaluate"``.

    Example
    -------
    >>> counts = {"rain": {"r1": 20, "r2": 5, "r3": 5},
    ...           "wind": {"w1": 10, "w2": 10, "w3": 10}}
    >>> side = assign_split(counts, 0.7)
    >>> sorted(g for g, s in side.items() if s == "evaluate")
    ['r2', 'r3', 'w1']
    """
    side = {}
    for scene in sorted(counts):
        sizes = counts[scene]
        groups = sorted(sizes, key=_rank)
        free = [g for g in groups if g not in side]
        total = sum(sizes.values())
        target = train_fraction * total
        fixed_train = sum(sizes[g] for g in groups if side.get(g) == "train")
        fixed_sides = {side[g] for g in groups if g in side}
        if len(free) > EXHAUSTIVE_SPLIT_GROUPS:
            chosen = _greedy_split(free, sizes, target - fixed_train)
        else:
            chosen, best = None, None
            for choice in itertools.product((True, False), repeat=len(free)):
                sides = fixed_sides | {
                    "train" if c else "evaluate" for c in choice
                }
                if sides != {"train", "evaluate"}:
                    continue
                train = fixed_train + sum(
                    sizes[g] for g, c in zip(free, choice, strict=True) if c
                )
                gap = abs(train - target)
                if best is None or gap < best:
                    chosen, best = choice, gap
        if chosen is None:
            raise ValueError(
                f"scene {scene!r} cannot be on both sides: its groups are "
                f"{groups} (sides so far {fixed_sides or 'none'})"
            )
        for group, train in zip(free, chosen, strict=True):
            side[group] = "train" if train else "evaluate"
    return side


def _greedy_split(free, sizes, target):
    taken, choice = 0, []
    for group in free:
        size = sizes[group]
        keep = abs(taken + size - target) < abs(taken - target)
        choice.append(keep)
        taken += size if keep else 0
    if all(choice):
        choice[-1] = False
    if not any(choice):
        choice[0] = True
    return tuple(choice)
