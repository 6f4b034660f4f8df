"""A small synthetic set in the exact ESC-50 layout, for tests and demos.

    python esc50_demo.py OUT_DIR [--n_classes 10] [--clips_per_class 10]

Each class is a sound of its own (a harmonic call, a noise band, a train of
clicks, with class-specific pitch, band and rhythm); each source recording
gives a few takes, and a source's takes share a fold, as in ESC-50
(Piczak, ACM Multimedia 2015). The same options give the same bytes.
"""

import argparse
import csv
from pathlib import Path

import numpy as np
import soundfile

from speechbrain_kd.environment import one_line_faults

# The first ESC-50 categories, in target order (targets 0-49 in the real
# set), and the ones of the ESC-10 subset among them.
CATEGORIES = [
    "dog", "rooster", "pig", "cow", "frog",
    "cat", "hen", "insects", "sheep", "crow",
]  # fmt: skip
ESC10 = {"dog", "rooster"}
TAKES_PER_SOURCE = 2


def _class_sound(target, rng, n, rate):
    """One clip of class ``target``: its call repeated over noise."""
    t = np.arange(n) / rate
    f0 = 180.0 * 1.35**target * rng.uniform(0.95, 1.05)
    beat = 1.5 + (target % 4) * 1.2  # calls per second
    call = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 4))
    if target % 3 == 1:  # a noise band instead of a harmonic call
        spectrum = np.fft.rfft(rng.standard_normal(n))
        freqs = np.fft.rfftfreq(n, 1.0 / rate)
        spectrum *= np.exp(-(((freqs - 2 * f0) / (0.3 * f0)) ** 2))
        call = np.fft.irfft(spectrum, n)
        call /= np.abs(call).max() + 1e-9
    envelope = np.clip(np.sin(2 * np.pi * beat * t + rng.uniform(0, 6)), 0, 1)
    wave = call * envelope**2 + 0.05 * rng.standard_normal(n)
    return 0.8 * wave / (np.abs(wave).max() + 1e-9)


def generate_esc50_demo(
    out_dir, n_classes=10, clips_per_class=10, seconds=5.0, sample_rate=44100,
    seed=0,
):  # fmt: skip
    """Write ``audio/`` and ``meta/esc50.csv`` to ``out_dir``.

    Arguments
    ---------
    out_dir : str or pathlib.Path
        A new or empty folder.
    n_classes : int
        1 to 10 (the first ESC-50 categories).
    clips_per_class : int
        A multiple of 5 (the same number in each fold).
    seconds : float
    sample_rate : int
    seed : int

    Returns
    -------
    pathlib.Path

    Example
    -------
    >>> path = generate_esc50_demo(getfixture("tmpdir") + "/esc", 2, 5,
    ...     1.0, 8000)
    >>> sorted(p.name for p in path.iterdir())
    ['audio', 'meta']
    >>> len(list((path / "audio").glob("*.wav")))
    10
    """
    if not 1 <= n_classes <= len(CATEGORIES):
        raise ValueError(f"n_classes={n_classes}: give 1 to {len(CATEGORIES)}")
    if clips_per_class < 5 or clips_per_class % 5:
        raise ValueError(
            f"clips_per_class={clips_per_class}: give a multiple of 5"
        )
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty")
    (out / "audio").mkdir(parents=True)
    (out / "meta").mkdir()
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    rows, source = [], 100000
    for target, category in enumerate(CATEGORIES[:n_classes]):
        for k in range(clips_per_class):
            fold = k % 5 + 1
            take = "ABCDEFGH"[(k // 5) % TAKES_PER_SOURCE]
            if take == "A":
                source += 1
            name = f"{fold}-{source}-{take}-{target}.wav"
            wave = _class_sound(target, rng, n, sample_rate)
            soundfile.write(out / "audio" / name, wave, sample_rate, "PCM_16")
            rows.append(
                [name, fold, target, category, category in ESC10, source, take]
            )
    with open(out / "meta" / "esc50.csv", "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(
            ["filename", "fold", "target", "category", "esc10", "src_file",
             "take"]
        )  # fmt: skip
        writer.writerows(rows)
    return out


def main(argv=None):
    """Command-line entry point (see the module docstring).

    Example
    -------
    >>> main([str(getfixture("tmpdir")) + "/cli", "--n_classes", "1",
    ...       "--clips_per_class", "5", "--seconds", "1"])
    ESC-50 demo set in .../cli
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--n_classes", type=int, default=10)
    parser.add_argument("--clips_per_class", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--sample_rate", type=int, default=44100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with one_line_faults(args.out_dir, "output folder"):
        path = generate_esc50_demo(
            args.out_dir, args.n_classes, args.clips_per_class, args.seconds,
            args.sample_rate, args.seed,
        )  # fmt: skip
    print(f"ESC-50 demo set in {path}")


if __name__ == "__main__":
    main()
