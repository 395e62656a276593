"""The wheels the extension zips bundle: the pins (:data:`BUNDLED_WHEELS` for every platform
of :data:`PLATFORMS` and Python of :data:`PYTHONS`), what a wheel's file name says (parsed by
``packaging``: :func:`parse_wheel`, :func:`wheel_platforms`, :func:`wheel_fits_python`),
downloading them into the cache with pip (:func:`fetch_wheels`), checking each
(:func:`check_wheel`) and the sha256 lock file :data:`WHEEL_HASHES`."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import (InvalidWheelFilename, NormalizedName, canonicalize_name,
                             parse_wheel_filename)
from packaging.version import Version

from .common import ROOT, BuildError

#: The one place the bundled Python dependencies are pinned: (project, version). Every
#: project here has a wheel for every platform of :data:`PLATFORMS` and every Python of
#: :data:`PYTHONS` (a pure-Python, stable-ABI or per-version wheel); each is downloaded with
#: ``--no-deps``, so this list is complete: the model's imports (onnxruntime, soxr,
#: soundfile, sounddevice) and their run-time requirements, numpy excepted.
BUNDLED_WHEELS = (
    ("onnxruntime", "1.23.2"),        # the inference backend (model_core, backend="onnx")
    ("flatbuffers", "25.12.19"),      # onnxruntime's requirements ...
    ("packaging", "26.4"),
    ("protobuf", "7.36.2"),           # ... (its sympy is the optional extra "symbolic")
    ("soxr", "1.1.0"),                # resampling (model_core.io.audio)
    ("soundfile", "0.14.0"),          # decoding (each platform's wheel carries libsndfile)
    ("cffi", "2.1.1"),                # soundfile's and sounddevice's requirement
    ("pycparser", "3.12"),            # cffi's requirement
    ("typing_extensions", "4.16.0"),  # soundfile's requirement
    ("sounddevice", "0.5.6"),         # Live (on Linux PortAudio comes from the OS: libportaudio2)
)
#: Projects that must never be bundled: Blender ships numpy (a second copy would shadow
#: it); torch is optional and far too big (about 200 MB per platform).
NEVER_BUNDLED = ("numpy", "torch")
#: Blender platform -> the pip ``--platform`` tags its wheels may carry. Linux: Blender
#: 4.2+ needs glibc 2.28, so manylinux_2_28 and older; macOS: pip also accepts older
#: macOS versions than the one named (onnxruntime 1.23.2 needs macOS 13).
PLATFORMS = {
    "linux-x64": ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"),
    "windows-x64": ("win_amd64",),
    "macos-arm64": ("macosx_13_0_arm64",),
    "macos-x64": ("macosx_13_0_x86_64",),
}
#: The Pythons of the Blenders the extension runs in: 3.11 (Blender 4.2-5.0), 3.13 (5.1+).
PYTHONS = ("3.11", "3.13")
#: Where bundled wheels lie inside the zip.
WHEEL_DIR = "wheels"
#: The sha256 of every wheel the zips may bundle (``sha256sum`` format, one wheel a line),
#: recorded from downloads pip checked against the index's published hashes: a cached
#: wheel that differs is refused. ``--update-lock`` rewrites it after a pin changes.
WHEEL_HASHES = ROOT / "tools" / "wheels.sha256"


def default_wheel_cache() -> Path:
    """The wheel cache: ``$STREAMTALKER_WHEEL_CACHE``, else
    ``$XDG_CACHE_HOME/streamtalker/wheels``, else ``~/.cache/streamtalker/wheels``."""
    if os.environ.get("STREAMTALKER_WHEEL_CACHE"):
        return Path(os.environ["STREAMTALKER_WHEEL_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "streamtalker" / "wheels"


def parse_wheel(filename: str) -> tuple[NormalizedName, Version, frozenset[Tag]]:
    """(project, version, tags) of a wheel file name (``packaging.utils.parse_wheel_filename``:
    the project name canonicalized as PEP 503 says, compressed tag sets such as ``py2.py3``
    or ``manylinux2014_x86_64.manylinux_2_17_x86_64`` expanded).

    Raises:
        BuildError: not a wheel file name.
    """
    try:
        name, version, _build, tags = parse_wheel_filename(os.path.basename(filename))
    except InvalidWheelFilename as e:
        raise BuildError(f"{filename} is not a wheel file name ({e})") from None
    return name, version, tags


def is_pinned(filename: str, project: str, version: str) -> bool:
    """Whether the wheel ``filename`` is of ``project`` (any spelling) at ``version``."""
    name, v, _ = parse_wheel(filename)
    return name == canonicalize_name(project) and v == Version(version)


def _blender_platform(tag: str) -> str:
    """The Blender platform (``linux-x64``, ``macos-arm64`` ...) of one wheel platform tag;
    ``"any"`` for pure Python; the tag itself where Blender has no name for it. Mirrors
    Blender's own mapping (``universal2`` is both macOS platforms: see
    :func:`wheel_platforms`)."""
    if tag == "any":
        return "any"
    if tag.startswith(("manylinux", "musllinux", "linux")):
        return "linux-x64" if tag.endswith("_x86_64") else f"linux-{tag.rsplit('_', 1)[1]}"
    if tag == "win_amd64":
        return "windows-x64"
    if tag.startswith("win"):
        return f"windows-{tag.split('_', 1)[-1]}"
    if tag.startswith("macosx"):
        arch = tag.split("_", 3)[-1]   # macosx_10_15_x86_64 -> x86_64
        return "macos-x64" if arch == "x86_64" else f"macos-{arch}"
    return tag


def wheel_platforms(filename: str) -> set[str]:
    """The Blender platforms (keys of :data:`PLATFORMS`, or others) a wheel installs on;
    ``{"any"}`` for a pure-Python wheel.

    Raises:
        BuildError: not a wheel file name.
    """
    out = set()
    for tag in parse_wheel(filename)[2]:
        if tag.platform.startswith("macosx") and tag.platform.endswith("_universal2"):
            out |= {"macos-x64", "macos-arm64"}
        else:
            out.add(_blender_platform(tag.platform))
    return out


def wheel_fits_python(filename: str, python: str) -> bool:
    """Whether Blender's Python ``python`` ("3.11"), a standard CPython build, installs this
    wheel on the wheel's own platforms: one of its tags is among those ``packaging.tags``
    lists for that interpreter (``cpXY-cpXY``, ``cpXY-none``, stable-ABI ``abi3`` wheels of
    the same or an older CPython, ``py3``/``pyXY`` pure-Python tags); free-threaded
    (``cp313t``) and debug builds' wheels do not fit.

    Raises:
        BuildError: not a wheel file name.
    """
    tags = parse_wheel(filename)[2]
    version = tuple(int(x) for x in python.split("."))[:2]
    cp = f"cp{version[0]}{version[1]}"
    platforms = sorted({t.platform for t in tags})
    supported = set(cpython_tags(version, abis=[cp], platforms=platforms)) | \
        set(compatible_tags(version, cp, platforms=platforms))
    return bool(tags & supported)


def _pip_download(reqs: list[str], platform: str, python: str, cache: Path,
                  index: bool) -> tuple[int, str]:
    """One ``pip download`` run for (platform, python); returns (exit status, output)."""
    digits = python.replace(".", "")
    cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--no-deps",
           "--implementation", "cp", "--python-version", python, "--abi", f"cp{digits}",
           "-d", str(cache), "--disable-pip-version-check", "--no-input",
           "--progress-bar", "off"]
    for tag in PLATFORMS[platform]:
        cmd += ["--platform", tag]
    if not index:
        cmd += ["--no-index", "--find-links", str(cache)]
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    r = subprocess.run(cmd + reqs, capture_output=True, text=True, env=env)
    return r.returncode, r.stdout + r.stderr


def check_wheel(path: Path, project: str, version: str) -> None:
    """Check a cached wheel: a readable zip with intact CRCs whose ``METADATA`` names
    ``project`` and ``version``.

    Raises:
        BuildError: naming the file and the fix (delete it; the next build downloads it
            again).
    """
    fix = f"delete {path} (the next build downloads it again)"
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
            metas = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
            meta = z.read(metas[0]).decode("utf-8", "replace") if len(metas) == 1 else ""
    except (zipfile.BadZipFile, OSError) as e:
        raise BuildError(f"{path} is not a readable wheel ({e}): {fix}") from None
    if bad:
        raise BuildError(f"{path} is corrupt (member {bad}): {fix}")
    head = dict(line.split(": ", 1) for line in meta.split("\n\n", 1)[0].splitlines()
                if ": " in line)
    if canonicalize_name(head.get("Name", "")) != canonicalize_name(project) or \
            head.get("Version") != version:
        raise BuildError(f"{path} is not {project} {version} (its METADATA says "
                         f"{head.get('Name')} {head.get('Version')}): {fix}")


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def read_hashes(path: Path | None = None) -> dict[str, str]:
    """``{wheel file name: sha256}`` from ``path`` (default :data:`WHEEL_HASHES`; empty if
    it is missing).

    Raises:
        BuildError: a line that is not ``<64 hex digits>  <name>.whl``.
    """
    path = Path(path) if path is not None else WHEEL_HASHES
    out = {}
    if not path.exists():
        return out
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        m = re.fullmatch(r"([0-9a-f]{64}) [ *](\S+\.whl)", line.strip())
        if m is None:
            raise BuildError(f"{path}:{i} is not '<sha256>  <wheel>.whl': fix or delete the "
                             f"line (--update-lock rewrites the file)")
        out[m.group(2)] = m.group(1)
    return out


def write_hashes(hashes: dict[str, str], path: Path | None = None) -> None:
    """Write ``path`` (default :data:`WHEEL_HASHES`): the pinned projects' entries only,
    sorted, atomically."""
    path = Path(path) if path is not None else WHEEL_HASHES
    lines = [f"{h}  {n}" for n, h in sorted(hashes.items())
             if any(is_pinned(n, p, v) for p, v in BUNDLED_WHEELS)]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("# sha256 of the wheels build_addon.py bundles (sha256sum -c format); "
                   "rewrite with `python build_addon.py --download-only --update-lock`\n"
                   + "\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def check_hashes(wheels: list[Path], update_lock: bool = False) -> None:
    """Check each wheel's sha256 against :data:`WHEEL_HASHES`; with ``update_lock``,
    record the ones not listed yet (and replace none that differ).

    Raises:
        BuildError: a wheel whose hash differs (the file and the fix named), or one not
            recorded while ``update_lock`` is false.
    """
    known = read_hashes()
    new = {}
    for p in wheels:
        h = sha256_of(p)
        want = known.get(p.name)
        if want is not None and want != h:
            raise BuildError(f"{p} has sha256 {h}, but {WHEEL_HASHES.name} records {want}: "
                             f"delete the cached file (the next build downloads it again); if "
                             f"the index really changed it, check why before updating "
                             f"{WHEEL_HASHES}")
        if want is None:
            if not update_lock:
                raise BuildError(f"{p.name} has no sha256 in {WHEEL_HASHES}: after changing "
                                 f"BUNDLED_WHEELS run `python build_addon.py --download-only "
                                 f"--update-lock` and commit {WHEEL_HASHES.name}")
            new[p.name] = h
    if new:
        write_hashes({**known, **new})


def fetch_wheels(platforms=tuple(PLATFORMS), pythons=PYTHONS, cache: str | os.PathLike |
                 None = None, offline: bool = False, log=print,
                 update_lock: bool = False) -> dict[str, list[Path]]:
    """The wheels of :data:`BUNDLED_WHEELS` for each platform (both Pythons), from the cache,
    downloading what is missing (unless ``offline``), each checked (:func:`check_wheel`)
    and its sha256 compared with :data:`WHEEL_HASHES` (:func:`check_hashes`; with
    ``update_lock`` new ones are recorded).

    Returns:
        ``{platform: [wheel paths]}`` (no duplicates: a wheel shared by both Pythons is
        listed once).
    Raises:
        BuildError: an unknown platform; pip could not find a pinned wheel (offline: the
            message says which and how to fill the cache); a cached wheel is damaged.
    """
    cache = Path(cache) if cache is not None else default_wheel_cache()
    cache.mkdir(parents=True, exist_ok=True)
    reqs = [f"{p}=={v}" for p, v in BUNDLED_WHEELS]
    out: dict[str, list[Path]] = {}
    for platform in platforms:
        if platform not in PLATFORMS:
            raise BuildError(f"unknown platform {platform!r}: choose from "
                             f"{', '.join(PLATFORMS)}")
        found: dict[str, Path] = {}
        for python in pythons:
            rc, text = _pip_download(reqs, platform, python, cache, index=False)
            if rc != 0 and not offline:
                log(f"build_addon: downloading wheels for {platform}, Python {python} "
                    f"into {cache}")
                rc, text = _pip_download(reqs, platform, python, cache, index=True)
            bad = re.search(r"located at (\S+\.whl) is invalid", text)
            if rc != 0 and bad:
                raise BuildError(f"{bad.group(1)} in the wheel cache is damaged (pip cannot "
                                 f"read it): delete it (the next build downloads it again)")
            if rc != 0:
                last = " / ".join(x.strip() for x in text.strip().splitlines()
                                  if x.startswith("ERROR"))[-600:]
                how = ("run `python build_addon.py --download-only` where the package index "
                       "is reachable (or copy the wheels into the cache)" if offline else
                       "check the pins in build_addon.BUNDLED_WHEELS and that the package "
                       "index is reachable (pip reads proxies from HTTPS_PROXY / pip.conf)")
                raise BuildError(f"pip found no complete wheel set for {platform}, Python "
                                 f"{python} in {cache}{'' if offline else ' or the index'} "
                                 f"({last or 'exit status ' + str(rc)}): {how}")
            for m in re.finditer(r"(?:Saved|File was already downloaded)\s+(.+?\.whl)\s*$",
                                 text, flags=re.M):
                name = Path(m.group(1)).name
                found[name] = cache / name
        by_project: dict[str, list[Path]] = {}
        for p in found.values():
            by_project.setdefault(parse_wheel(p.name)[0], []).append(p)
        for project, version in BUNDLED_WHEELS:
            got = by_project.get(canonicalize_name(project), [])
            for python in pythons:
                if not [p for p in got if wheel_fits_python(p.name, python)]:
                    raise BuildError(f"no {project} {version} wheel for {platform}, Python "
                                     f"{python} came out of pip (got: "
                                     f"{', '.join(p.name for p in got) or 'none'})")
            for p in got:
                check_wheel(p, project, version)
        extra = set(by_project) - {canonicalize_name(p) for p, _ in BUNDLED_WHEELS}
        if extra:
            raise BuildError(f"pip returned wheels that are not pinned: {', '.join(extra)}")
        out[platform] = sorted(found.values(), key=lambda p: p.name)
        check_hashes(out[platform], update_lock)
    return out
