"""Build the installable Blender extension: one zip per platform (add-on + vendored
model_core + weights + the bundled wheels of its Python dependencies).

``python build_addon.py [-o dist/] [--force] [--platform linux-x64 ...] [--wheel-cache DIR]
[--offline] [--download-only] [--update-lock] [--blender-ext PATH]`` writes, for each platform in
:data:`PLATFORMS` (Blender's ``--split-platforms`` convention and names)::

    dist/streamtalker-<version>-linux_x64.zip
    dist/streamtalker-<version>-windows_x64.zip
    dist/streamtalker-<version>-macos_arm64.zip
    dist/streamtalker-<version>-macos_x64.zip

(version from ``streamtalker_addon/blender_manifest.toml``). Each zip holds

* the add-on package ``streamtalker_addon/`` at the zip's root (manifest, ``__init__.py``, ...),
* a copy of the part of the bpy-free library that runs inside Blender as ``model_core/``
  inside it (:data:`VENDORED`: the package facade, ``face``, ``errors``, ``interrupt``, ``io``,
  ``runtime``, ``vertex``, ``live`` -- not ``training``, ``evaluation`` or ``cli``; see
  docs/architecture.md), with everything in ``model_core/weights/``: the bundled default
  model ``default.safetensors`` + ``default.json`` and, where present, its ONNX graphs
  (``*.onnx`` / a ``default.onnx/`` folder) that the onnxruntime backend runs (the add-on
  imports ``<addon>.model_core`` first, see ``streamtalker_addon/core.py``),
* ``wheels/*.whl``: the wheels of :data:`BUNDLED_WHEELS` (onnxruntime and its run-time
  requirements flatbuffers, packaging, protobuf; soxr; soundfile + cffi, pycparser,
  typing_extensions; sounddevice) for that platform and for both Pythons of
  :data:`PYTHONS` (3.11: Blender 4.2-5.0; 3.13: Blender 5.1+), listed in the zip's manifest
  (``wheels``, ``platforms``). Blender installs the ones matching its own Python when the
  extension is installed; nothing is downloaded at run time. Not bundled: numpy (Blender
  ships it; every bundled wheel works with numpy 1.26 and 2.x), torch (optional: the add-on
  uses it only where it happens to be importable, for CUDA), and onnxruntime's optional
  extras (sympy + mpmath for ``symbolic``, ml_dtypes for ``quantization``: onnxruntime
  imports and runs sessions without them),
* ``LICENSE`` (the project's ``LICENSE``/``COPYING`` if present, else the GPL-3 text from
  ``/usr/share/common-licenses/GPL-3``; the manifest says GPL-3.0-or-later).

onnxruntime is pinned to 1.23.2: the last release with macOS x86_64 wheels (1.24+ have
``macosx_14_0_arm64`` only), and its wheels are about 40 % smaller than 1.32.0's (Linux
17.0 MB against 27.8 MB per Python), which keeps every zip under 60 MB.

**Wheels** are downloaded at build time by ``pip download --only-binary=:all: --no-deps
--platform ... --python-version ... --implementation cp --abi ...`` into a cache folder
(:func:`default_wheel_cache`: ``$STREAMTALKER_WHEEL_CACHE``, else
``$XDG_CACHE_HOME/streamtalker/wheels``, else ``~/.cache/streamtalker/wheels``), never into
the project and never committed. A build first resolves from the cache alone
(``--no-index --find-links``) and asks the package index only for what is missing
(``--offline``: never). pip checks each download against the sha256 the index publishes;
the build then checks every wheel it bundles against the sha256 recorded in
``tools/wheels.sha256`` (:data:`WHEEL_HASHES`; ``--update-lock`` records new ones after a
pin changes) and that it is a readable zip whose ``METADATA`` names the pinned project and
version.

The zips are made by Blender's own ``blender_ext.py build --split-platforms`` and each is
checked with ``blender_ext.py validate`` and by :func:`check_contents` (the manifest's
``platforms``/``wheels`` agree with the zip; every pinned project has a wheel for every
Python; no numpy or torch). Both scripts ship inside the ``bpy`` module
(``<site-packages>/bpy/5.0/scripts/addons_core/bl_pkg/cli/blender_ext.py``) and in every
Blender install (``<blender>/<version>/scripts/addons_core/bl_pkg/cli/``).

An existing zip is never overwritten: the build refuses (exit status 2, before building
anything) unless ``--force`` is given, and then each new zip is written to a temporary file
and renamed over the old one. Errors are one clear sentence on stderr (exit status 2),
raised as :class:`BuildError` by :func:`build` for callers such as the tests.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
ADDON_DIR = ROOT / "streamtalker_addon"
MODEL_CORE_DIR = ROOT / "model_core"
MANIFEST = ADDON_DIR / "blender_manifest.toml"
#: Files every zip must hold (paths inside the zip).
REQUIRED = ("blender_manifest.toml", "__init__.py", "LICENSE",
            "model_core/__init__.py", "model_core/weights/default.safetensors",
            "model_core/weights/default.json")
#: What of model_core goes into the zip (paths relative to model_core/): the layers that run
#: inside Blender. tests/test_layers.py checks that none of them imports anything else.
VENDORED = ("__init__.py", "face.py", "errors.py", "interrupt.py", "io", "runtime", "vertex", "live", "weights")
LICENSE_CANDIDATES = (ROOT / "LICENSE", ROOT / "COPYING", ROOT / "LICENSE.txt",
                      Path("/usr/share/common-licenses/GPL-3"))
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "*.egg-info", ".pytest_cache",
                                 "*.tmp", ".*.swp")

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


class BuildError(RuntimeError):
    """The extension could not be built or did not validate (message: one sentence)."""


def manifest_info(manifest: Path = MANIFEST) -> dict:
    """The parsed ``blender_manifest.toml``.

    Raises:
        BuildError: missing or not valid TOML, or no ``id``/``version``.
    """
    if not manifest.exists():
        raise BuildError(f"{manifest} does not exist: the add-on is missing; nothing to package")
    try:
        info = tomllib.loads(manifest.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise BuildError(f"{manifest} is not valid TOML: {e}") from None
    for k in ("id", "version"):
        if not info.get(k):
            raise BuildError(f"{manifest} has no '{k}'")
    for k in ("wheels", "platforms"):
        if k in info:
            raise BuildError(f"{manifest} sets '{k}': remove it (build_addon.py writes "
                             f"'wheels' and 'platforms' from BUNDLED_WHEELS and PLATFORMS)")
    return info


def find_blender_ext(explicit: str | os.PathLike | None = None) -> Path:
    """Path of Blender's ``blender_ext.py``: ``explicit``, else ``$BLENDER_EXT_PY``, else the
    copy inside the installed ``bpy`` module (found without importing it).

    Raises:
        BuildError: not found (the message says how to get it).
    """
    cand = explicit or os.environ.get("BLENDER_EXT_PY")
    if cand:
        p = Path(cand).expanduser()
        if not p.is_file():
            raise BuildError(f"blender_ext.py not found at {p}")
        return p
    spec = importlib.util.find_spec("bpy")
    if spec is not None and spec.origin:
        hits = sorted(glob.glob(os.path.join(os.path.dirname(spec.origin), "*", "scripts",
                                             "addons_core", "bl_pkg", "cli", "blender_ext.py")))
        if hits:
            return Path(hits[-1])
    raise BuildError("Blender's extension tool blender_ext.py was not found: install the bpy "
                     "module (`bash tools/setup.sh` installs bpy==5.0.1) or pass --blender-ext "
                     "<blender>/<version>/scripts/addons_core/bl_pkg/cli/blender_ext.py")


def _run_ext(ext: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # blender_ext.py is self-contained
    return subprocess.run([sys.executable, str(ext), *args], capture_output=True, text=True,
                          env=env)


def validate(zip_or_dir: str | os.PathLike, blender_ext: str | os.PathLike | None = None) -> str:
    """Run ``blender_ext.py validate`` on a zip or source folder; returns its output.

    Raises:
        BuildError: the validator rejects it (its message is included).
    """
    ext = find_blender_ext(blender_ext)
    r = _run_ext(ext, "validate", str(zip_or_dir))
    out = (r.stdout + r.stderr).strip()
    if r.returncode != 0 or "Success" not in r.stdout:
        raise BuildError(f"Blender's extension validator rejected {zip_or_dir}: {out}")
    return out


def _license_file() -> Path:
    for p in LICENSE_CANDIDATES:
        if p.is_file():
            return p
    raise BuildError("no licence text found: add the GPL-3.0 text as LICENSE at the project "
                     "root (the manifest declares GPL-3.0-or-later)")


# -- wheels ---------------------------------------------------------------------------------
def default_wheel_cache() -> Path:
    """The wheel cache: ``$STREAMTALKER_WHEEL_CACHE``, else
    ``$XDG_CACHE_HOME/streamtalker/wheels``, else ``~/.cache/streamtalker/wheels``."""
    if os.environ.get("STREAMTALKER_WHEEL_CACHE"):
        return Path(os.environ["STREAMTALKER_WHEEL_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "streamtalker" / "wheels"


def _norm(name: str) -> str:
    """A project name normalised as wheel file names spell it (PEP 503/427)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def wheel_tags(filename: str) -> tuple[str, str, str, str, str]:
    """(project, version, python tag, abi tag, platform tag) of a wheel file name.

    Raises:
        BuildError: not a wheel name.
    """
    parts = os.path.basename(filename)[:-len(".whl")].split("-")
    if not filename.endswith(".whl") or len(parts) not in (5, 6):
        raise BuildError(f"{filename} is not a wheel file name")
    return _norm(parts[0]), parts[1], parts[-3], parts[-2], parts[-1]


def wheel_platforms(filename: str) -> set[str]:
    """The Blender platforms (keys of :data:`PLATFORMS`, or others) a wheel installs on;
    ``{"any"}`` for a pure-Python wheel. Mirrors Blender's own mapping (``universal2`` is
    both macOS platforms)."""
    out = set()
    for tag in wheel_tags(filename)[4].split("."):
        if tag == "any":
            out.add("any")
        elif tag.startswith(("manylinux", "musllinux", "linux")):
            out.add("linux-x64" if tag.endswith("_x86_64") else f"linux-{tag.rsplit('_', 1)[1]}")
        elif tag == "win_amd64":
            out.add("windows-x64")
        elif tag.startswith("win"):
            out.add(f"windows-{tag.split('_', 1)[-1]}")
        elif tag.startswith("macosx"):
            arch = tag.split("_", 3)[-1]   # macosx_10_15_x86_64 -> x86_64
            if arch == "universal2":
                out |= {"macos-x64", "macos-arm64"}
            else:
                out.add("macos-x64" if arch == "x86_64" else f"macos-{arch}")
        else:
            out.add(tag)
    return out


def wheel_fits_python(filename: str, python: str) -> bool:
    """Whether Blender's Python ``python`` ("3.11") installs this wheel: ``py3``/``py2.py3``
    tags, the same ``cpXY``, or a stable-ABI (``abi3``) wheel of an older CPython."""
    _, _, pytag, abi, _ = wheel_tags(filename)
    major, minor = (int(x) for x in python.split("."))
    for t in pytag.split("."):
        if t in (f"py{major}", f"py{major}{minor}"):
            return True
        m = re.fullmatch(r"cp(\d)(\d+)", t)
        if m and int(m.group(1)) == major:
            if int(m.group(2)) == minor and abi in (f"cp{major}{minor}", "abi3", "none"):
                return True
            if abi == "abi3" and int(m.group(2)) < minor:
                return True
    return False


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
    if _norm(head.get("Name", "")) != _norm(project) or head.get("Version") != version:
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
    pinned = {(_norm(p), v) for p, v in BUNDLED_WHEELS}
    lines = [f"{h}  {n}" for n, h in sorted(hashes.items()) if wheel_tags(n)[:2] in pinned]
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
            by_project.setdefault(wheel_tags(p.name)[0], []).append(p)
        for project, version in BUNDLED_WHEELS:
            got = by_project.get(_norm(project), [])
            for python in pythons:
                if not [p for p in got if wheel_fits_python(p.name, python)]:
                    raise BuildError(f"no {project} {version} wheel for {platform}, Python "
                                     f"{python} came out of pip (got: "
                                     f"{', '.join(p.name for p in got) or 'none'})")
            for p in got:
                check_wheel(p, project, version)
        extra = set(by_project) - {_norm(p) for p, _ in BUNDLED_WHEELS}
        if extra:
            raise BuildError(f"pip returned wheels that are not pinned: {', '.join(extra)}")
        out[platform] = sorted(found.values(), key=lambda p: p.name)
        check_hashes(out[platform], update_lock)
    return out


# -- staging, checking, building ------------------------------------------------------------
def _manifest_with(text: str, platforms: list[str], wheels: list[str]) -> str:
    """The manifest text with top-level ``platforms`` and ``wheels`` inserted before its
    first table (so they stay top-level keys)."""
    def arr(xs):
        return "[\n" + "".join(f'  "{x}",\n' for x in xs) + "]"
    block = (f"# Written by build_addon.py from BUNDLED_WHEELS and PLATFORMS.\n"
             f"platforms = {arr(platforms)}\nwheels = {arr(wheels)}\n\n")
    m = re.search(r"^\[", text, flags=re.M)
    return text + "\n" + block if m is None else text[:m.start()] + block + text[m.start():]


def stage(dest: Path, wheels: dict[str, list[Path]] | None = None) -> Path:
    """Copy what goes into the zip into the new folder ``dest``: the add-on, the Blender side
    of ``model_core`` (:data:`VENDORED`, with its weights) inside it, ``LICENSE``, and the
    ``wheels`` (``{platform: [paths]}`` from :func:`fetch_wheels`) into ``wheels/`` with the
    manifest's ``platforms`` and ``wheels`` written. Returns ``dest``.

    Raises:
        BuildError: the add-on, model_core or the bundled default model is missing.
    """
    manifest_info()
    for p in (MODEL_CORE_DIR / "__init__.py", MODEL_CORE_DIR / "weights" / "default.safetensors",
              MODEL_CORE_DIR / "weights" / "default.json"):
        if not p.is_file():
            raise BuildError(f"{p} is missing: the zip must carry model_core and the bundled "
                             f"default model")
    shutil.copytree(ADDON_DIR, dest, ignore=_IGNORE)
    if (dest / "model_core").exists():
        raise BuildError(f"{ADDON_DIR}/model_core exists: remove it (build_addon.py vendors "
                         f"the project's model_core itself)")
    if (dest / WHEEL_DIR).exists():
        raise BuildError(f"{ADDON_DIR}/{WHEEL_DIR} exists: remove it (build_addon.py puts "
                         f"the wheels there from its cache)")
    for name in VENDORED:
        src, out = MODEL_CORE_DIR / name, dest / "model_core" / name
        if src.is_dir():
            shutil.copytree(src, out, ignore=_IGNORE)
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, out)
    shutil.copyfile(_license_file(), dest / "LICENSE")
    if wheels:
        (dest / WHEEL_DIR).mkdir()
        names = []
        for p in sorted({p for ps in wheels.values() for p in ps}, key=lambda p: p.name):
            shutil.copyfile(p, dest / WHEEL_DIR / p.name)
            names.append(f"./{WHEEL_DIR}/{p.name}")
        mf = dest / "blender_manifest.toml"
        mf.write_text(_manifest_with(mf.read_text(encoding="utf-8"), list(wheels), names),
                      encoding="utf-8")
    return dest


def zip_name(info: dict | None = None, platform: str | None = None) -> str:
    """``<id>-<version>-<platform>.zip`` (``linux-x64`` -> ``linux_x64``, as Blender's
    ``--split-platforms`` names them); ``<id>-<version>.zip`` without a platform."""
    info = info or manifest_info()
    tail = f"-{platform.replace('-', '_')}" if platform else ""
    return f"{info['id']}-{info['version']}{tail}.zip"


def zip_manifest(zip_path: str | os.PathLike) -> dict:
    """The manifest inside a built zip, with Blender's ``[build.generated]`` values
    (``platforms``, ``wheels``) moved to the top level, as Blender reads them.

    Raises:
        BuildError: no readable manifest.
    """
    try:
        with zipfile.ZipFile(zip_path) as z:
            info = tomllib.loads(z.read("blender_manifest.toml").decode("utf-8"))
    except (KeyError, zipfile.BadZipFile, tomllib.TOMLDecodeError, OSError) as e:
        raise BuildError(f"{zip_path} has no readable blender_manifest.toml ({e})") from None
    info.update(info.get("build", {}).get("generated", {}))
    return info


def check_contents(zip_path: str | os.PathLike, platform: str | None = None) -> list[str]:
    """The zip's file names, after checking it: the :data:`REQUIRED` files are there; for a
    platform zip, the manifest's ``platforms`` is ``[platform]``, every wheel it lists is in
    the zip and every wheel in the zip is listed, each fits the platform, every project of
    :data:`BUNDLED_WHEELS` has a wheel of its pinned version for every Python of
    :data:`PYTHONS`, and nothing of :data:`NEVER_BUNDLED` is there.

    Raises:
        BuildError: what is wrong, naming the zip and the file.
    """
    try:
        with zipfile.ZipFile(zip_path) as z:
            names = z.namelist()
            bad = z.testzip()
    except zipfile.BadZipFile as e:
        raise BuildError(f"{zip_path} is not a readable zip: {e}") from None
    if bad:
        raise BuildError(f"{zip_path}: corrupt member {bad}")
    missing = [r for r in REQUIRED if r not in names]
    if missing:
        raise BuildError(f"{zip_path} lacks {', '.join(missing)}")
    if platform is None:
        return names
    info = zip_manifest(zip_path)
    if info.get("platforms") != [platform]:
        raise BuildError(f"{zip_path}: its manifest says platforms = {info.get('platforms')}, "
                         f"expected [{platform!r}]")
    listed = [w[2:] if w.startswith("./") else w for w in info.get("wheels", [])]
    inside = [n for n in names if n.endswith(".whl")]
    if sorted(listed) != sorted(inside):
        raise BuildError(f"{zip_path}: the manifest's wheels and the zip's .whl files differ "
                         f"(listed, not in the zip: {sorted(set(listed) - set(inside))}; in "
                         f"the zip, not listed: {sorted(set(inside) - set(listed))})")
    for w in listed:
        fits = wheel_platforms(w)
        if "any" not in fits and platform not in fits:
            raise BuildError(f"{zip_path}: {w} is not a {platform} wheel")
        if wheel_tags(w)[0] in {_norm(n) for n in NEVER_BUNDLED}:
            raise BuildError(f"{zip_path} bundles {w}: numpy comes with Blender and torch is "
                             f"never bundled")
    for project, version in BUNDLED_WHEELS:
        for python in PYTHONS:
            if not [w for w in listed if wheel_tags(w)[:2] == (_norm(project), version)
                    and wheel_fits_python(w, python)]:
                raise BuildError(f"{zip_path} has no {project} {version} wheel for Python "
                                 f"{python}")
    return names


def build_all(out_dir: str | os.PathLike = ROOT / "dist", force: bool = False,
              platforms=tuple(PLATFORMS), wheel_cache: str | os.PathLike | None = None,
              offline: bool = False, blender_ext: str | os.PathLike | None = None,
              log=print, update_lock: bool = False) -> dict[str, Path]:
    """Build, validate and check one zip per platform; returns ``{platform: zip path}``
    (``out_dir/<id>-<version>-<platform>.zip``).

    Args:
        out_dir: folder for the zips (created).
        force: replace existing zips (atomically: temp file, then rename).
        platforms: Blender platforms to build (keys of :data:`PLATFORMS`).
        wheel_cache: the wheel cache (default :func:`default_wheel_cache`).
        offline: never ask the package index; the cache must hold every wheel.
        blender_ext: path of ``blender_ext.py`` (default: found, see :func:`find_blender_ext`).
        update_lock: record the sha256 of wheels not yet in :data:`WHEEL_HASHES` (see
            :func:`fetch_wheels`).
    Raises:
        BuildError: a zip exists and ``force`` is false (checked before anything is built);
            a wheel is missing; a source is missing; Blender's build or validate step
            fails; a zip fails :func:`check_contents`.
    """
    info = manifest_info()
    platforms = list(dict.fromkeys(platforms))
    if not platforms:
        raise BuildError("no platform to build: name at least one of " + ", ".join(PLATFORMS))
    for p in platforms:
        if p not in PLATFORMS:
            raise BuildError(f"unknown platform {p!r}: choose from {', '.join(PLATFORMS)}")
    out_dir = Path(out_dir)
    dests = {p: out_dir / zip_name(info, p) for p in platforms}
    existing = [str(d) for d in dests.values() if d.exists()]
    if existing and not force:
        raise BuildError(f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}"
                         f": not overwriting (pass --force to replace, or choose another "
                         f"--out folder)")
    ext = find_blender_ext(blender_ext)
    wheels = fetch_wheels(platforms, PYTHONS, wheel_cache, offline=offline, log=log,
                          update_lock=update_lock)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="streamtalker-build-") as td:
        built: dict[str, Path] = {}
        for p in platforms:
            # one staging folder per platform: a pure-Python wheel that pip picks for one
            # platform only (sounddevice's Linux wheel) must not leak into the others
            work = Path(td) / p
            src = stage(work / info["id"], {p: wheels[p]})
            r = _run_ext(ext, "validate", str(src))
            if r.returncode != 0 or "Success" not in r.stdout:
                raise BuildError(f"Blender's extension validator rejected the add-on sources "
                                 f"for {p}: {(r.stdout + r.stderr).strip()}")
            r = _run_ext(ext, "build", "--split-platforms", "--source-dir", str(src),
                         "--output-filepath", str(work / zip_name(info)))
            z = work / zip_name(info, p)
            if r.returncode != 0 or not z.exists():
                raise BuildError(f"Blender's extension build failed for {p}: "
                                 f"{(r.stdout + r.stderr).strip()}")
            validate(z, ext)
            check_contents(z, p)
            built[p] = z
        for p in platforms:
            _place(built[p], dests[p], force)
    return dests


def _place(tmp_zip: Path, dest: Path, force: bool) -> None:
    """Move a finished zip to ``dest``: renamed over an old one with ``force``; else
    created only if absent (never clobbers a zip made meanwhile)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.stem}-", suffix=".zip.tmp", dir=dest.parent)
    os.close(fd)
    try:
        shutil.copyfile(tmp_zip, tmp)
        shutil.copymode(tmp_zip, tmp)  # the umask's mode, not mkstemp's private 0600
        if force:
            os.replace(tmp, dest)
            return
        try:  # atomic "create if absent"
            os.link(tmp, dest)
        except FileExistsError:
            raise BuildError(f"{dest} appeared while building: not overwriting it") from None
        except OSError:  # filesystem without hard links
            if dest.exists():
                raise BuildError(f"{dest} already exists: not overwriting it") from None
            os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def build(out_dir: str | os.PathLike = ROOT / "dist", force: bool = False,
          blender_ext: str | os.PathLike | None = None, platform: str = "linux-x64",
          wheel_cache: str | os.PathLike | None = None, offline: bool = False) -> Path:
    """Build one platform's zip (default: Linux x86_64, the platform the tests run on);
    returns its path. See :func:`build_all`."""
    return build_all(out_dir, force=force, platforms=[platform], wheel_cache=wheel_cache,
                     offline=offline, blender_ext=blender_ext)[platform]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", default=str(ROOT / "dist"),
                    help="output folder (default: dist/)")
    ap.add_argument("--force", action="store_true", help="replace existing zips")
    ap.add_argument("--platform", action="append", choices=list(PLATFORMS),
                    help="build only this platform (repeatable; default: all of "
                         f"{', '.join(PLATFORMS)})")
    ap.add_argument("--wheel-cache", default=None,
                    help=f"wheel cache folder (default: {default_wheel_cache()})")
    ap.add_argument("--offline", action="store_true",
                    help="never ask the package index: every wheel must be in the cache")
    ap.add_argument("--download-only", action="store_true",
                    help="only fill the wheel cache for the chosen platforms, build nothing")
    ap.add_argument("--update-lock", action="store_true",
                    help=f"record the sha256 of wheels not yet in {WHEEL_HASHES.name} (after "
                         f"changing BUNDLED_WHEELS)")
    ap.add_argument("--blender-ext", default=None,
                    help="path of blender_ext.py (default: the one inside the bpy module)")
    args = ap.parse_args(argv)
    platforms = args.platform or list(PLATFORMS)
    try:
        if args.download_only:
            wheels = fetch_wheels(platforms, PYTHONS, args.wheel_cache, offline=args.offline,
                                  update_lock=args.update_lock)
            for p, ws in wheels.items():
                mb = sum(w.stat().st_size for w in ws) / 1e6
                print(f"build_addon: {p}: {len(ws)} wheels, {mb:.1f} MB in "
                      f"{args.wheel_cache or default_wheel_cache()}")
            return 0
        paths = build_all(args.out, force=args.force, platforms=platforms,
                          wheel_cache=args.wheel_cache, offline=args.offline,
                          blender_ext=args.blender_ext, update_lock=args.update_lock)
    except BuildError as e:
        print(f"build_addon: {e}", file=sys.stderr)
        return 2
    for p, path in paths.items():   # build_all checked each zip (check_contents)
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
        wheels = [n.rsplit("/", 1)[-1] for n in names if n.endswith(".whl")]
        print(f"build_addon: {path} ({path.stat().st_size / 1e6:.1f} MB, {len(names)} files, "
              f"{len(wheels)} wheels for Python {' and '.join(PYTHONS)}; passed Blender's "
              f"extension validator)")
        for w in wheels:
            print(f"    {w}")
    print(f"build_addon: vendored model_core's Blender side ({', '.join(VENDORED)}) and the "
          f"default weights; numpy (Blender's) and torch are not bundled")
    print("build_addon: install in Blender with Edit > Preferences > Get Extensions > "
          "Install from Disk, choosing the zip named after your platform")
    return 0


if __name__ == "__main__":
    sys.exit(main())
