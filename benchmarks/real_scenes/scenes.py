"""Which files of the packages are which scene: the rules and the sources.

:data:`SCENE_RULES` maps file-name patterns to scenes, first match wins;
files that no rule names are not used. :func:`_list_sources` keeps the
files whose licence is allowed, that libsndfile decodes and that last at
least one clip, and lists the others.
"""

import fnmatch
import re
from pathlib import Path

import soundfile

from speechbrain_kd.files import file_sha256

from .licences import licence_for, licence_ok, parse_dep5

# Which file is which scene: (package, pattern relative to the package's
# sound folder, scene). Patterns are fnmatch-style (``*`` any text, ``?``
# one character); the first rule that matches wins.
SCENE_RULES = (
    # rain
    ("0ad", "weather/rain_*.ogg", "rain"),
    ("redeclipse", "morph/rain.ogg", "rain"),
    ("redeclipse", "morph/stormrain.ogg", "rain"),
    ("stk", "rain.ogg", "rain"),
    # wind
    ("0ad", "weather/wind_*.ogg", "wind"),
    ("0ad", "weather/windgust_*.ogg", "wind"),
    ("0ad", "weather/windleaves_*.ogg", "wind"),
    ("0ad", "weather/windstorm_*.ogg", "wind"),
    ("0ad", "weather/snowstorm_*.ogg", "wind"),
    ("redeclipse", "wind.ogg", "wind"),
    ("redeclipse", "wastewind.ogg", "wind"),
    ("redeclipse", "blowwind.ogg", "wind"),
    ("redeclipse", "hollowwind.ogg", "wind"),
    ("redeclipse", "morph/wind?.ogg", "wind"),
    ("redeclipse", "morph/stormwind.ogg", "wind"),
    ("ufoai", "arcticwind.ogg", "wind"),
    # thunder (claps, rumble and the rain between them)
    ("0ad", "weather/thunder_*.ogg", "thunderstorm"),
    ("redeclipse", "morph/stormbolts.ogg", "thunderstorm"),
    ("ufoai", "thunder?.ogg", "thunderstorm"),
    ("stk", "thunder.ogg", "thunderstorm"),
    # birds in woods by day
    ("0ad", "dayscape/day_temperate_*.ogg", "forest_birds"),
    ("0ad", "dayscape/day_tropical_*.ogg", "forest_birds"),
    ("redeclipse", "forest?.ogg", "forest_birds"),
    ("stk", "exotic-birds*.ogg", "forest_birds"),
    # crickets, cicadas, a night chorus
    ("redeclipse", "nightcrickets.ogg", "insects"),
    ("redeclipse", "cycadas.ogg", "insects"),
    ("ufoai", "cricket_loop.ogg", "insects"),
    ("ufoai", "ufo_night_atm.ogg", "insects"),
    # running water: rivers, creeks, waterfalls, fountains
    ("0ad", "water/river_*.ogg", "stream"),
    ("0ad", "water/waterfall_*.ogg", "stream"),
    ("redeclipse", "creek.ogg", "stream"),
    ("redeclipse", "river.ogg", "stream"),
    ("redeclipse", "water.ogg", "stream"),
    ("redeclipse", "waterfall*.ogg", "stream"),
    ("stk", "river_loop.ogg", "stream"),
    ("stk", "waterfall_loop*.ogg", "stream"),
    ("ufoai", "water.ogg", "stream"),
    ("ufoai", "water0?.ogg", "stream"),
    ("ufoai", "waterfontain.ogg", "stream"),
    # surf on a shore (one package only, three distinct recordings)
    ("0ad", "water/wave*.ogg", "seashore"),
    # people: a market, a harbour, a restaurant
    ("0ad", "building/amb_trade_*.ogg", "market_crowd"),
    ("0ad", "building/amb_port_*.ogg", "market_crowd"),
    ("stk", "lenautile_restaurant.ogg", "market_crowd"),
    # fire: too little audio at 3 s (about 14 clips), so it is dropped
    # unless shorter clips are asked for
    ("ufoai", "fire*.ogg", "fire"),
    ("ufoai", "smallfire.ogg", "fire"),
    ("redeclipse", "fire.ogg", "fire"),
)
# Not used: 0ad building/amb_farm_* (a farmyard: no other package has one,
# and its audio recurs in amb_port_20), Red Eclipse's distant_cars and
# UFO:AI's city ambiences (one traffic recording only), and the many
# synthetic or machine sounds.


def scene_of(package, path, rules=SCENE_RULES):
    """The scene of a sound file, or None when no rule names it.

    Arguments
    ---------
    package : str
        Short package name, a key of :data:`PACKAGES`.
    path : str
        Path relative to the package's sound folder.
    rules : sequence of (package, pattern, scene)
        First match wins.

    Returns
    -------
    str or None

    Example
    -------
    >>> scene_of("0ad", "weather/rain_11.ogg")
    'rain'
    >>> scene_of("redeclipse", "forest2.ogg")
    'forest_birds'
    >>> scene_of("ufoai", "alienatmo.ogg") is None
    True
    """
    for rule_package, pattern, scene in rules:
        if rule_package == package and fnmatch.fnmatchcase(path, pattern):
            return scene
    return None


def sanitize(text):
    """Lower-case ``text`` with runs of other characters than [a-z0-9] as _.

    Example
    -------
    >>> sanitize("exotic-birds 2.OGG")
    'exotic_birds_2_ogg'
    """
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def stem_key(path):
    """The name shared by the numbered loops of one take: folder and stem
    without a trailing number, in [a-z0-9_].

    Files of one package with the same key are one source group.

    Example
    -------
    >>> stem_key("weather/rain_11.ogg")
    'weather_rain'
    >>> stem_key("fire03.ogg"), stem_key("fire.ogg"), stem_key("smallfire.ogg")
    ('fire', 'fire', 'smallfire')
    >>> stem_key("morph/wind1.ogg"), stem_key("wind.ogg")
    ('morph_wind', 'wind')
    """
    folder, _, name = path.rpartition("/")
    stem = re.sub(r"[_-]?\d+$", "", name.rsplit(".", 1)[0]) or name
    return sanitize(f"{folder}_{stem}" if folder else stem)


def _source_path(spec, rel):
    inner = spec["root"] + rel
    if spec["container"]:
        return f"{spec['container']}!/{inner}"
    return inner


def _upstream_path(spec, path):
    inner = path.split("!/", 1)[1] if spec["container"] else path
    strip, add = spec["upstream"]
    return add + inner.removeprefix(strip)


def _list_sources(packages, bases, rules, seconds):
    """Candidate files: (short, rel) -> info, and the files left out."""
    sources, skipped = {}, []
    for short, spec in sorted(packages.items()):
        base = bases[short]
        stanzas = parse_dep5((base / spec["copyright"]).read_text("utf-8"))
        root = base.joinpath(*Path(_source_path(spec, "x")).parent.parts)
        if not root.is_dir():
            continue
        for file in sorted(root.rglob("*")):
            if not file.is_file():
                continue
            rel = file.relative_to(root).as_posix()
            scene = scene_of(short, rel, rules)
            if scene is None:
                continue
            path = _source_path(spec, rel)
            where = f"{spec['package']}:{path}"
            stanza = licence_for(stanzas, _upstream_path(spec, path))
            if stanza is None or not licence_ok(stanza["license"]):
                licence = stanza["license"] if stanza else "none"
                skipped.append(f"{where}: licence {licence} not allowed")
                continue
            try:
                info = soundfile.info(str(file))
            except Exception as error:  # listed with the file, not hidden
                skipped.append(f"{where}: not readable ({error})")
                continue
            duration = info.frames / info.samplerate
            if duration < seconds:
                skipped.append(
                    f"{where}: {duration:.2f} s, shorter than one clip"
                )
                continue
            sources[(short, rel)] = {
                "file": file,
                "scene": scene,
                "path": path,
                "licence": stanza["license"],
                "copyright": stanza["copyright"],
                "comment": stanza["comment"],
                "sha256": file_sha256(file),
                "rate": info.samplerate,
                "channels": info.channels,
                "duration": duration,
            }
    return sources, skipped
