"""The Python packages the model needs, installed into the extension's own user folder.

Blender's Python has numpy but not torch, scipy, soxr, soundfile, safetensors, tqdm or
sounddevice (Live; on Linux it also needs the OS package libportaudio2).
torch's CPU wheel alone is about 200 MB per platform, so the extension zip does not bundle
wheels; instead the add-on's preferences have an **Install Dependencies** button that runs
Blender's own pip (``sys.executable -m pip``) in a background thread:

* into ``bpy.utils.extension_path_user(<addon>, path="deps")`` with ``--target`` (nothing
  is written into Blender's installation or the user's site-packages; uninstalling the
  extension removes the folder with the extension's user data),
* every requirement pinned (:data:`REQUIREMENTS`, the versions the project is tested with)
  and installed with ``--no-deps`` and ``--only-binary=:all:``: pip never resolves
  dependencies, so it never installs a second numpy; Blender's bundled numpy is the one
  used (:func:`check_numpy` refuses to install when it is outside scipy's supported range),
* torch from the PyTorch CPU index (``https://download.pytorch.org/whl/cpu``, the
  ``+cpu`` build on Linux and Windows; PyPI's build on macOS), the rest from PyPI; both
  addresses can be overridden with ``STREAMTALKER_TORCH_INDEX_URL`` /
  ``STREAMTALKER_INDEX_URL``; pip's own configuration (proxy, certificates) applies,
* into a staging folder that replaces ``deps`` only once every pip run succeeded, so a
  failed or offline attempt leaves the previous state untouched.

:func:`add_to_sys_path` appends the folder to ``sys.path`` at register time (appended, so
the modules Blender ships, numpy first, keep precedence); :func:`remove_from_sys_path`
undoes it at unregister. Only :func:`deps_dir` and the redraw timer touch ``bpy``; the rest
is plain Python and tested headless.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

#: Import names the model needs that Blender does not ship.
MODULES = ("torch", "scipy", "soxr", "soundfile", "safetensors", "tqdm", "sounddevice")
#: Pinned torch (the CPU build) and where it comes from.
TORCH_VERSION = "2.13.0"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PYPI_INDEX = "https://pypi.org/simple"
#: Pinned requirements besides torch: the model's direct dependencies and every
#: dependency of theirs except numpy (installed with --no-deps, so this list is complete).
REQUIREMENTS = (
    "scipy==1.17.1",
    "soxr==1.1.0",
    "soundfile==0.14.0",
    "sounddevice==0.5.6",   # Live; on Linux PortAudio itself comes from the OS (libportaudio2)
    "cffi==2.1.1",
    "pycparser==3.12",
    "safetensors==0.8.0",
    "tqdm==4.70.1",
    'colorama==0.4.6; platform_system == "Windows"',
    # torch's own dependencies
    "filelock==4.2.11",
    "typing_extensions==4.16.0",
    "sympy==1.14.0",
    "mpmath==1.3.0",
    "networkx==3.6.1",
    "jinja2==3.1.6",
    "MarkupSafe==3.0.4",
    "fsspec==2026.9.0",
    "setuptools==84.2.1",
)
#: numpy versions the pinned scipy supports (scipy 1.17.1: numpy>=1.26.4,<2.7).
NUMPY_RANGE = ((1, 26, 4), (2, 7, 0))
#: Seconds pip waits on a socket, and how often it retries (kept low: an offline
#: machine fails in about a minute rather than after pip's default 5 retries).
PIP_TIMEOUT_S = 30
PIP_RETRIES = 1

_OFFLINE_PATTERNS = (
    "NewConnectionError", "Failed to establish a new connection", "Temporary failure in name "
    "resolution", "Name or service not known", "nodename nor servname", "getaddrinfo failed",
    "Network is unreachable", "Connection refused", "ConnectTimeoutError", "Read timed out",
    "ProxyError", "No route to host", "Max retries exceeded", "SSLError",
)


class DepsError(RuntimeError):
    """Installing the dependencies failed (message: sentences for the user)."""


def torch_requirement(platform: str | None = None) -> tuple[str, str]:
    """(requirement, index URL) for torch on ``platform`` (default ``sys.platform``):
    the ``+cpu`` build from the PyTorch CPU index on Linux and Windows, PyPI's on macOS."""
    platform = platform or sys.platform
    if platform == "darwin":
        return f"torch=={TORCH_VERSION}", os.environ.get("STREAMTALKER_INDEX_URL", PYPI_INDEX)
    return (f"torch=={TORCH_VERSION}+cpu",
            os.environ.get("STREAMTALKER_TORCH_INDEX_URL", TORCH_CPU_INDEX))


def pip_commands(target: str, python: str | None = None, platform: str | None = None,
                 torch_index: str | None = None, index: str | None = None) -> list[list[str]]:
    """The pip command lines (argument lists) that install everything into ``target``.

    Two runs: torch from its index, then :data:`REQUIREMENTS` from PyPI. Both use
    ``--no-deps`` (pip never installs numpy), ``--only-binary=:all:`` (no compiler needed),
    ``--target``, ``--upgrade`` and a short timeout.

    Args:
        target: the folder to install into (a staging folder, see :func:`install`).
        python: the interpreter (default ``sys.executable``: Blender's Python in Blender).
        platform: ``sys.platform`` value to build for (default: this one).
        torch_index, index: override the index URLs.
    """
    python = python or sys.executable
    treq, tindex = torch_requirement(platform)
    tindex = torch_index or tindex
    index = index or os.environ.get("STREAMTALKER_INDEX_URL", PYPI_INDEX)
    common = ["-m", "pip", "install", "--target", str(target), "--no-deps",
              "--only-binary=:all:", "--upgrade", "--no-input", "--disable-pip-version-check",
              "--no-warn-script-location", "--progress-bar", "off",
              "--timeout", str(PIP_TIMEOUT_S), "--retries", str(PIP_RETRIES)]
    return [[python, *common, "--index-url", tindex, treq],
            [python, *common, "--index-url", index, *REQUIREMENTS]]


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text.split("+")[0])[:3])


def check_numpy(version: str | None = None) -> str:
    """The running numpy's version, checked against :data:`NUMPY_RANGE`.

    Raises:
        DepsError: numpy missing, or a version the pinned scipy does not support.
    """
    if version is None:
        try:
            import numpy
        except ImportError:
            raise DepsError("Blender's Python has no numpy; StreamTalker needs the numpy "
                            "that Blender ships (Blender 4.5 LTS, 5.0 or 5.2 LTS)") from None
        version = numpy.__version__
    v = _version_tuple(version)
    lo, hi = NUMPY_RANGE
    if not (lo <= v < hi):
        raise DepsError(f"Blender's numpy {version} is outside the range the pinned scipy "
                        f"supports ({'.'.join(map(str, lo))} to below "
                        f"{'.'.join(map(str, hi))}); use Blender 4.5 LTS, 5.0 or 5.2 LTS")
    return version


def missing_modules(modules=MODULES) -> list[str]:
    """The import names among ``modules`` that cannot be found on ``sys.path`` now."""
    importlib.invalidate_caches()
    out = []
    for m in modules:
        try:
            if importlib.util.find_spec(m) is None:
                out.append(m)
        except (ImportError, ValueError):
            out.append(m)
    return out


def deps_dir(package: str | None = None, create: bool = True) -> str:
    """The folder dependencies are installed into: the extension's user folder
    ``<user extensions>/.user/<repo>/<id>/deps`` (removed with the extension); for a
    checkout registered as a plain add-on, ``<user scripts>/streamtalker_deps``."""
    import bpy
    package = package or __package__ or "streamtalker_addon"
    try:
        return bpy.utils.extension_path_user(package, path="deps", create=create)
    except (ValueError, AttributeError):
        return bpy.utils.user_resource("SCRIPTS", path="streamtalker_deps", create=create)


_added: list[str] = []


def add_to_sys_path(path: str | None = None) -> bool:
    """Append the dependency folder to ``sys.path`` if it exists and is not there yet.

    Appended, not prepended: modules Blender ships (numpy) keep precedence. Returns True
    when the folder is on ``sys.path`` afterwards.
    """
    path = os.path.normpath(path or deps_dir(create=False))
    if not os.path.isdir(path):
        return False
    if path not in (os.path.normpath(p) for p in sys.path):
        sys.path.append(path)
        _added.append(path)
    importlib.invalidate_caches()
    return True


def remove_from_sys_path() -> None:
    """Remove what :func:`add_to_sys_path` added (modules already imported stay loaded)."""
    while _added:
        p = _added.pop()
        while p in sys.path:
            sys.path.remove(p)
    importlib.invalidate_caches()


def explain_failure(output: str, returncode: int, index: str) -> str:
    """One clear message for a failed pip run (``output``: its stdout+stderr)."""
    if any(p in output for p in _OFFLINE_PATTERNS):
        return (f"could not reach the package index {index} (offline, or blocked by a "
                f"proxy or firewall): connect to the internet (pip reads proxy settings from "
                f"HTTPS_PROXY and pip.conf) and press Install Dependencies again")
    if "No module named pip" in output:
        return ("Blender's Python has no pip: run `<blender python> -m ensurepip` once, then "
                "press Install Dependencies again")
    m = re.search(r"(No matching distribution found for [^\n]+|Could not find a version that "
                  r"satisfies the requirement [^\n]+)", output)
    if m:
        return (f"pip found no wheel for this Python/platform at {index}: {m.group(1).strip()} "
                f"(StreamTalker's pinned dependencies need 64-bit Windows, Linux or macOS and "
                f"Python 3.11)")
    if "No space left" in output:
        return "no space left on the disk holding Blender's user folder"
    tail = " / ".join(line.strip() for line in output.strip().splitlines()[-3:])
    return f"pip failed (exit status {returncode}): {tail}"


@dataclass
class InstallState:
    """Progress of the (single) install, read by the preferences panel.

    ``status``: "idle" | "running" | "done" | "failed"; ``fraction`` 0..1; ``message``:
    the current step or the error; ``log``: the last pip output lines.
    """

    status: str = "idle"
    fraction: float = 0.0
    message: str = ""
    log: list = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0


state = InstallState()
_thread: threading.Thread | None = None


def _progress_from_line(line: str, run: int, n_runs: int, n_reqs: int, seen: set) -> float | None:
    """A progress fraction from one pip output line, or None."""
    low = line.strip()
    if low.startswith("Collecting "):
        seen.add(low.split()[1].split(";")[0].lower())
        return (run + 0.8 * min(len(seen) / max(n_reqs, 1), 1.0)) / n_runs
    if low.startswith("Installing collected packages"):
        return (run + 0.85) / n_runs
    if low.startswith("Successfully installed"):
        return (run + 1.0) / n_runs
    return None


def install(target: str, commands: list[list[str]] | None = None, env: dict | None = None,
            on_progress=None, keep_log: int = 40) -> str:
    """Run the pip commands into a staging folder next to ``target``, then swap it in.

    Args:
        target: the final dependency folder (:func:`deps_dir`).
        commands: default :func:`pip_commands` for the staging folder; the string
            ``{target}`` in any argument is replaced by the staging folder.
        env: environment for pip (default: this process's, with ``PYTHONNOUSERSITE=1``).
        on_progress: called as ``on_progress(fraction, message, line)``.
    Returns:
        ``target``.
    Raises:
        DepsError: numpy outside the supported range, pip failed (offline: a sentence
            saying so), or the folder could not be swapped in. ``target`` is unchanged then.
    """
    check_numpy()
    target = os.path.normpath(target)
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    staging = os.path.join(parent, f".deps-staging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    if commands is None:
        commands = pip_commands(staging)
    else:
        commands = [[a.replace("{target}", staging) for a in c] for c in commands]
    env = dict(os.environ if env is None else env)
    env.setdefault("PYTHONNOUSERSITE", "1")
    env.pop("PYTHONPATH", None)
    report = on_progress or (lambda *a: None)
    try:
        for i, cmd in enumerate(commands):
            index = cmd[cmd.index("--index-url") + 1] if "--index-url" in cmd else "the index"
            n_reqs = sum(1 for a in cmd[cmd.index("install") + 1:]
                         if not a.startswith("-") and "==" in a)
            report(i / len(commands), f"pip run {i + 1} of {len(commands)}: {index}", "")
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, env=env, bufsize=1)
            lines, seen = [], set()
            for line in proc.stdout:
                line = line.rstrip()
                lines.append(line)
                frac = _progress_from_line(line, i, len(commands), n_reqs, seen)
                report(frac, line.strip()[:120], line)
            proc.wait()
            if proc.returncode != 0:
                raise DepsError(explain_failure("\n".join(lines), proc.returncode, index))
        if os.path.isdir(os.path.join(staging, "numpy")):  # --no-deps makes this impossible
            shutil.rmtree(os.path.join(staging, "numpy"))
        old = f"{target}.old-{os.getpid()}"
        if os.path.exists(target):
            try:
                os.replace(target, old)
            except OSError as e:
                raise DepsError(f"could not replace {target} ({e}): the installed packages "
                                f"are in use; restart Blender and install again") from None
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report(1.0, "installed", "")
    return target


def start_install(target: str | None = None, commands=None, env=None) -> threading.Thread:
    """Start :func:`install` in a background thread that updates :data:`state`; on success
    the folder is added to ``sys.path``. Returns the thread.

    Raises:
        DepsError: an install is already running.
    """
    global _thread
    if _thread is not None and _thread.is_alive():
        raise DepsError("the dependencies are already being installed")
    target = target or deps_dir(create=True)
    state.status, state.fraction, state.message = "running", 0.0, "starting pip"
    state.log, state.started, state.finished = [], time.time(), 0.0

    def progress(frac, message, line):
        if frac is not None:
            state.fraction = max(state.fraction, min(1.0, frac))
        if message:
            state.message = message
        if line:
            state.log = (state.log + [line])[-40:]

    def run():
        try:
            install(target, commands, env, on_progress=progress)
            add_to_sys_path(target)
            still = missing_modules()
            if still:
                raise DepsError(f"installed, but {', '.join(still)} still cannot be imported "
                                f"from {target}")
            state.status, state.message = "done", "dependencies installed"
        except DepsError as e:
            state.status, state.message = "failed", str(e)
        except Exception as e:  # reported in the preferences, never raised in the thread
            state.status, state.message = "failed", f"{type(e).__name__}: {e}"
        finally:
            state.finished = time.time()

    _thread = threading.Thread(target=run, name="StreamTalker deps install", daemon=True)
    _thread.start()
    return _thread


def redraw_timer() -> float | None:
    """``bpy.app.timers`` callback while installing: redraw the Preferences window so the
    progress bar moves; stops itself when the install ends."""
    try:
        import bpy
        for win in bpy.context.window_manager.windows:
            for area in win.screen.areas:
                if area.type == "PREFERENCES":
                    area.tag_redraw()
    except Exception:
        pass
    return 0.5 if state.status == "running" else None
