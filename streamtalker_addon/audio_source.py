"""Audio sources: a sound strip of the scene, or an audio file.

Main thread: :func:`strip_source` / :func:`file_source` read what they need from Blender
(paths, frames, offsets, fps) into a plain :class:`AudioSource`. Worker thread:
:meth:`AudioSource.read` decodes and slices the samples (no ``bpy`` data touched).

Samples: :func:`decode` reads the file at its own rate -- with soundfile, the command line's
decoder, or with Blender's ``aud`` for formats only Blender reads (:func:`.compat.audio_decoder`
decides) -- and hands them to ``model_core.io.audio``, the one place that mixes to mono and
resamples to the model rate (soxr). So a strip in Blender and the same file on the command
line give the same samples, and the same frames.

Timing (docs/architecture.md, "Blender facts"; checked against Blender's own mixdown in
the tests): with
``fps = render.fps / render.fps_base``, scene frame ``f`` plays source time
``(f - strip.frame_start) / fps - strip.sound_offset`` seconds, and the strip is audible for
``frame_final_start <= f < frame_final_end`` (trims included; 5.2 calls these
``content_start``, ``left_handle``, ``right_handle``: :func:`.compat.strip_frames`), cut to
the handles of the meta strips it is nested in (:func:`playback`). A strip with retiming keys
(which do not expose the source position they hold) is rendered by Blender's own mixdown
instead (:func:`render_strip`): what it plays is what the model hears. The
samples handed to the model start at the source time of ``frame_final_start`` and last exactly
``round(n_frames * MODEL_SAMPLE_RATE / fps)`` samples (``model_core.face.frame_samples``), zero-padded where the strip runs
outside the file, so a session at the scene's fps yields exactly one frame per audible scene
frame and output frame ``i`` is scene frame ``frame_final_start + i``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from .core import face as _face, mc_submodule
from .errors import AudioError, SourceError

__all__ = ["AudioSource", "Playback", "SourceError", "check_fps", "decode", "file_source",
           "find_strip", "playback", "render_strip", "scene_fps", "sound_strips",
           "strip_source"]

#: Frame rates animators use; others work but are reported as unusual.
COMMON_FPS = (23.976, 24.0, 25.0, 29.97, 30.0, 48.0, 50.0, 59.94, 60.0, 120.0)


@dataclass
class AudioSource:
    """What the worker needs to read the audio for one generation. Plain data, no bpy.

    Attributes:
        label: strip or file name (names the new action).
        path: absolute path of the audio file ('' when ``packed`` holds the bytes).
        packed: the file's bytes when the sound is packed into the .blend, else None.
        fps: scene frames per second (``render.fps / render.fps_base``).
        first_frame: scene frame of output frame 0 (``frame_final_start`` for a strip).
        n_frames: frames to generate (audible frames), or None for "the whole file".
        source_start_s: source-file time of ``first_frame``, seconds (may be negative:
            silence is padded).
    """

    label: str
    path: str
    fps: float
    first_frame: int
    n_frames: int | None
    source_start_s: float = 0.0
    packed: bytes | None = field(default=None, repr=False)
    #: sentences for the user found while reading (e.g. nothing of the file is audible)
    notes: list = field(default_factory=list, repr=False)
    #: the audible frames' samples already rendered at the model rate (a retimed strip,
    #: rendered by Blender's mixdown on the main thread), else None: the file is decoded
    rendered: np.ndarray | None = field(default=None, repr=False)
    #: what identifies the line on the head's NLA track ("scene/strip"; the label for files)
    line: str = ""

    def n_samples(self, n_frames: int) -> int:
        """Model-rate (16 kHz) samples that give exactly ``n_frames`` frames at ``fps``."""
        return _face().frame_samples(n_frames, _model_rate(), self.fps)

    def read(self) -> np.ndarray:
        """Decode and slice the audio: float32 [N] mono 16 kHz (worker thread).

        Raises:
            SourceError: missing, unreadable or unsupported file; audio with no samples.
        """
        rate = _model_rate()
        if self.rendered is not None:
            n = self.n_samples(self.n_frames)
            out = np.zeros(n, np.float32)
            m = min(n, len(self.rendered))
            out[:m] = self.rendered[:m]
            return out
        audio = decode(self.path, self.packed, self.label)
        start = int(round(self.source_start_s * rate))
        if self.n_frames is None:
            n = len(audio) - max(start, 0)
            n_frames = _face().frame_count(Fraction(max(n, 0), rate), self.fps)
            if n_frames < 1:
                raise SourceError(f"{self.label}: the audio is shorter than one frame")
            self.n_frames = n_frames
        n = self.n_samples(self.n_frames)
        out = np.zeros(n, np.float32)
        lo, hi = max(start, 0), min(start + n, len(audio))
        if hi > lo:
            out[lo - start:hi - start] = audio[lo:hi]
        else:
            where = "past the end" if start >= len(audio) else "before the start"
            self.notes.append(
                f"{self.label}: its audible frames lie {where} of its audio file (source time "
                f"{self.source_start_s:.2f} s; the file lasts {len(audio) / rate:.2f} s: "
                f"check the strip's sound offset); silence is keyed")
        return out


def _model_rate() -> int:
    """The model's sample rate (``model_core.io.audio.MODEL_SAMPLE_RATE``)."""
    return int(mc_submodule("io.audio").MODEL_SAMPLE_RATE)


def decode(path: str, packed: bytes | None = None, label: str = "") -> np.ndarray:
    """Decode an audio file to float32 [N] mono at the model rate (16 kHz).

    The file is read at its own rate -- with soundfile (``model_core.load_audio``, the
    command line's decoder) or, for formats only Blender reads, Blender's ``aud``
    (:func:`.compat.audio_decoder` decides) -- and resampled by model_core's one path, soxr
    (``model_core.io.audio``). Packed sounds are written to a temporary file first.

    Raises:
        SourceError: file missing, a directory, unreadable, or empty.
    """
    name = label or os.path.basename(path)
    if packed is not None:
        import tempfile
        suffix = Path(path).suffix or ".wav"
        with tempfile.TemporaryDirectory(prefix="streamtalker-") as tmp:
            p = os.path.join(tmp, "packed" + suffix)
            with open(p, "wb") as f:
                f.write(packed)
            return decode(p, None, label)
    if not path:
        raise SourceError(f"{name}: the sound has no file path")
    if not os.path.exists(path):
        raise SourceError(f"{name}: audio file not found: {path}")
    if os.path.isdir(path):
        raise SourceError(f"{name}: {path} is a folder, not an audio file")
    from . import compat
    if compat.audio_decoder(path) == "aud":
        aud = compat.aud_module()
        try:
            # cache() decodes now and raises aud.error on an unreadable file; data() on a
            # file that does not decode would abort the process (uncaught C++ exception)
            snd = aud.Sound(path)
            rate, channels = snd.specs  # probe: raises aud.error for non-audio files
            data = snd.cache().data()   # [N, channels] float32 at the file's own rate
        except Exception as e:  # aud.error
            raise SourceError(f"{name}: unsupported or unreadable audio file {path} ({e})") from None
        a = np.asarray(data, dtype=np.float32).reshape(-1, max(int(channels), 1))
        if a.size == 0:
            raise SourceError(f"{name}: {path} holds no samples (zero-length audio)")
        if not np.isfinite(a).all():
            raise SourceError(f"{name}: {path} has NaN/infinite samples")
        try:
            return mc_submodule("io.audio").to_model_rate(a, float(rate), what=name)
        except (AudioError, ValueError) as e:
            raise SourceError(f"{name}: {e}") from None
    try:
        return mc_submodule("io.audio").load_audio(path)
    except FileNotFoundError as e:
        raise SourceError(f"{name}: {e}") from None
    except AudioError as e:
        raise SourceError(f"{name}: {e}") from None


# ---------------------------------------------------------------------------------------
# Blender side (main thread)

def scene_fps(scene) -> float:
    """Frames per second of a scene: ``render.fps / render.fps_base`` (29.97 for 30/1.001)."""
    return scene.render.fps / scene.render.fps_base


def check_fps(fps: float) -> str | None:
    """None when ``fps`` is usable and common; a warning sentence when it is usable but
    unusual.

    Raises:
        SourceError: outside the one frame-rate range (``model_core.face.check_fps``,
            ``MIN_FPS``..``MAX_FPS``: what a session accepts).
    """
    face = _face()
    try:
        face.check_fps(fps)
    except ValueError:
        raise SourceError(f"the scene's frame rate is {fps:.3f} fps; StreamTalker needs "
                          f"{face.MIN_FPS:g}-{face.MAX_FPS:g} fps (Output Properties > "
                          f"Frame Rate)") from None
    if not any(abs(fps - c) < 0.01 for c in COMMON_FPS):
        return (f"the scene runs at an unusual {fps:.3f} fps; keys are placed on its frames "
                f"all the same")
    return None


def sound_strips(scene) -> list:
    """All sound strips of a scene (inside meta strips too), in timeline order.

    (:func:`.compat.all_strips`: ``strips_all`` or ``sequences_all``.)
    """
    from . import compat
    strips = [s for s in compat.all_strips(scene) if s.type == "SOUND"]
    return sorted(strips, key=lambda s: (compat.strip_frames(s)[1], s.channel, s.name))


def find_strip(scene, name: str):
    """The sound strip called ``name`` in ``scene``, or None."""
    for s in sound_strips(scene):
        if s.name == name:
            return s
    return None


@dataclass
class Playback:
    """How Blender plays a sound strip (:func:`playback`): ``first <= f < end`` the scene
    frames it is heard (its own trims and those of every meta strip it is nested in);
    ``silenced``: why playback is silent ('' when it is not: the strip, a meta strip or a
    channel is muted); ``metas``: the enclosing meta strips' names, innermost first;
    ``retimed``: it has retiming keys."""

    first: int
    end: int
    silenced: str = ""
    metas: tuple = ()
    retimed: bool = False


def playback(scene, strip) -> Playback:
    """The frames and state in which Blender plays ``strip`` (main thread).

    A strip inside meta strips is heard only where every enclosing meta strip is (their
    handles trim it) and is silent when any of them, the strip itself, or the channel it or
    a meta strip sits on is muted (the sequencer's channel headers, or a meta strip's own
    channels).
    """
    from . import compat
    _, first, end = compat.strip_frames(strip)
    metas = compat.parent_metas(strip)
    why = ""
    if strip.mute:
        why = f"strip '{strip.name}' is muted"
    elif compat.channel_muted(scene, strip):
        why = f"channel {strip.channel} of strip '{strip.name}' is muted"
    for m in metas:
        _, m_first, m_end = compat.strip_frames(m)
        first, end = max(first, m_first), min(end, m_end)
        if not why and m.mute:
            why = f"its meta strip '{m.name}' is muted"
        elif not why and compat.channel_muted(scene, m):
            why = f"channel {m.channel} of its meta strip '{m.name}' is muted"
    return Playback(first=first, end=max(end, first), silenced=why,
                    metas=tuple(m.name for m in metas),
                    retimed=len(compat.retiming_frames(strip)) > 0)


#: Blender's mixdown of a retimed sound strip now and then dies of SIGFPE inside audaspace's
#: resampler (an integer division by zero in ``aud::JOSResampleReader::resample_mono``,
#: about one process in eight on Blender 4.5 and 5.0 alike, whatever the rate and format):
#: it would take Blender and the user's unsaved work with it. So the mixdown runs in a
#: child process, on a copy of the scene, and is tried again when the child crashes, up
#: to this many crashes.
MIXDOWN_TRIES = 4

#: The same mixdown is not repeatable either: of a scene of several strips, the same copy
#: rendered by 100 children on Blender 4.5 came out as 14 different signals: 65 alike, most
#: others the retimed strip's sound shifted (by 0.4 to 66 ms where measured), four almost
#: silent (RMS 0.5 % of the others). So :func:`isolated_mixdown` renders until two
#: children agree sample for sample, at most this many times.
MIXDOWN_RENDERS = 6

#: The child: Blender's own binary (``blender -b FILE --python-expr``) inside Blender, the
#: Python running the ``bpy`` module outside it. Arguments: blend, scene, out wav, rate.
_MIXDOWN_CHILD = """
import sys, bpy
blend, scene_name, out, rate = sys.argv[-4:]
if not bpy.data.filepath:
    bpy.ops.wm.open_mainfile(filepath=blend)
scene = bpy.data.scenes[scene_name]
kw = {"scene": scene}
if bpy.app.version >= (5, 0, 0):
    kw["sequencer_scene"] = scene
with bpy.context.temp_override(**kw):
    bpy.ops.sound.mixdown(filepath=out, check_existing=False, container="WAV", codec="PCM",
                          format="F32", mixrate=int(rate), channels="MONO")
"""


def _mixdown_command(blend: str, scene_name: str, out: str, rate: int) -> list[str]:
    import sys

    import bpy
    args = [blend, scene_name, out, str(rate)]
    if bpy.app.binary_path:     # inside Blender: its own binary, headless, no user add-ons
        return [bpy.app.binary_path, "-b", "--factory-startup", blend, "--python-exit-code",
                "1", "--python-expr", _MIXDOWN_CHILD, "--", *args]
    return [sys.executable, "-c", _MIXDOWN_CHILD, *args]


def isolated_mixdown(scene, rate: int = 48000) -> tuple[np.ndarray, int]:
    """Blender's mixdown of ``scene`` (its frame range, its strips as muted now): float32
    ``[n, 1]`` mono samples and their rate (Hz), made in a child process from a copy of the
    scene written with ``bpy.data.libraries.write`` (absolute paths, packed sounds kept).
    A child that fails is tried again, up to :data:`MIXDOWN_TRIES` failures; renders are
    made until two agree sample for sample (:data:`MIXDOWN_RENDERS`: Blender's mixdown of
    a retimed strip differs between runs, and is now and then almost silent), and when
    none do, the one nearest the others, not an almost silent one (:func:`_medoid`),
    is taken (a single render, when the children kept failing, as it is). Main thread.

    Raises:
        RuntimeError: the child failed every time (the last error in the message);
        OSError: the copy could not be written.
    """
    import subprocess
    import tempfile

    import bpy
    import soundfile
    with tempfile.TemporaryDirectory(prefix="streamtalker-mix-") as tmp:
        blend, out = os.path.join(tmp, "scene.blend"), os.path.join(tmp, "mix.wav")
        bpy.data.libraries.write(blend, {scene}, path_remap="ABSOLUTE", compress=False)
        cmd = _mixdown_command(blend, scene.name, out, rate)
        why, failures, renders = "", 0, []
        while failures < MIXDOWN_TRIES and len(renders) < MIXDOWN_RENDERS:
            if os.path.isfile(out):
                os.remove(out)
            r = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
            if r.returncode == 0 and os.path.isfile(out):
                data, got = soundfile.read(out, dtype="float32", always_2d=True)
                if any(x.shape == data.shape and np.array_equal(x, data) for x, _ in renders):
                    return data, int(got)
                renders.append((data, int(got)))
                continue
            failures += 1
            lines = [s for s in (r.stderr + r.stdout).strip().splitlines() if s.strip()]
            why = (f"the mixdown process died of signal {-r.returncode}" if r.returncode < 0
                   else lines[-1] if lines else f"exit status {r.returncode}")
        if renders:
            return renders[_medoid([x for x, _ in renders])]
    raise RuntimeError(f"{why} ({MIXDOWN_TRIES} tries)")


def _medoid(renders: list[np.ndarray]) -> int:
    """Index of the render to take when no two agree (a non-empty list of float32
    ``[n, C]`` arrays; a shorter one is compared over the common length; samples that are
    not finite count as 0): of those at least half as loud (RMS) as the median render, the
    one with the least summed squared distance to the others. The almost silent renders
    are left out first: they sit nearer every other render than a shifted copy does, so a
    plain medoid would choose them. A single render is taken as it is."""
    n = min(len(x) for x in renders)
    flat = [np.nan_to_num(x[:n].astype(np.float64).ravel(), nan=0.0, posinf=0.0, neginf=0.0)
            for x in renders]
    rms = np.array([np.sqrt(np.mean(a ** 2)) if a.size else 0.0 for a in flat])
    keep = [i for i in range(len(flat)) if rms[i] >= 0.5 * np.median(rms)]
    cost = [sum(float(np.sum((flat[i] - b) ** 2)) for b in flat) for i in keep]
    return keep[int(np.argmin(cost))]


def render_strip(scene, strip, first: int, end: int) -> np.ndarray:
    """What Blender plays of ``strip`` alone over scene frames ``first <= f < end``, as mono
    float32 at the model rate: Blender's own mixdown (``bpy.ops.sound.mixdown`` in a child
    process, :func:`isolated_mixdown`; 48 kHz mono float, then model_core's one resampling
    path) with every other strip muted and the strip and its meta strips unmuted for the
    render; every setting is put back after it. For strips whose timing Blender does not
    expose (retiming keys). Main thread.

    Raises:
        SourceError: Blender could not render it.
    """
    from . import compat
    ed = scene.sequence_editor
    metas = compat.parent_metas(strip)
    keep = {strip.name, *(m.name for m in metas)}
    muted = {s.name: s.mute for s in compat.all_strips(scene)}
    chans = []
    for owner in (ed, *metas):
        chs = getattr(owner, "channels", None)
        if chs is not None:
            chans += [(c, c.mute) for c in chs if c.mute]
    frame_range = (scene.frame_start, scene.frame_end)
    try:
        for s in compat.all_strips(scene):
            s.mute = s.name not in keep
        for c, _ in chans:
            c.mute = False
        scene.frame_start, scene.frame_end = first, end - 1
        data, rate = isolated_mixdown(scene, 48000)
    except (RuntimeError, OSError) as e:
        raise SourceError(f"strip '{strip.name}': Blender could not render its retimed audio "
                          f"({str(e).strip().splitlines()[-1] if str(e).strip() else e})") from None
    finally:
        scene.frame_start, scene.frame_end = frame_range
        for s in compat.all_strips(scene):
            if s.name in muted:
                s.mute = muted[s.name]
        for c, m in chans:
            c.mute = m
    n = _face().frame_samples(end - first, rate, scene_fps(scene))
    data = data[:n]
    if len(data) < n:
        data = np.concatenate([data, np.zeros((n - len(data), data.shape[1]), np.float32)])
    try:
        return mc_submodule("io.audio").to_model_rate(data, float(rate), what=strip.name)
    except (AudioError, ValueError) as e:
        raise SourceError(f"strip '{strip.name}': {e}") from None


def strip_source(scene, strip) -> AudioSource:
    """Read a sound strip's timing and file into an :class:`AudioSource` (main thread):
    the frames Blender plays it (:func:`playback`: meta strips' trims applied); a retimed
    strip's audio is rendered now by Blender's mixdown (:func:`render_strip`).

    Raises:
        SourceError: not a sound strip, no sound, file missing, nothing audible (trimmed
            away by itself or by a meta strip: the message says which), bad fps.
    """
    import bpy

    if getattr(strip, "type", None) != "SOUND":
        raise SourceError(f"strip '{strip.name}' is not a sound strip")
    fps = scene_fps(scene)
    check_fps(fps)
    sound = strip.sound
    if sound is None:
        raise SourceError(f"strip '{strip.name}' has no sound data")
    packed = None
    if sound.packed_file is not None:
        packed = bytes(sound.packed_file.data)
        path = sound.filepath
    else:
        path = bpy.path.abspath(sound.filepath, library=sound.library)
        path = os.path.normpath(path) if path else ""
        if not path or not os.path.isfile(path):
            raise SourceError(f"strip '{strip.name}': its audio file is missing: "
                              f"{path or sound.filepath or '(no path)'}")
    from . import compat
    content_start, own_first, own_end = compat.strip_frames(strip)
    if own_end <= own_first:
        raise SourceError(f"strip '{strip.name}' is trimmed to nothing (no audible frames)")
    play = playback(scene, strip)
    first, end = play.first, play.end
    if end <= first:
        raise SourceError(f"strip '{strip.name}' plays nothing: its meta strip "
                          f"'{play.metas[0] if play.metas else '?'}' is trimmed so that none "
                          f"of its frames {own_first}-{own_end - 1} are heard (widen the meta "
                          f"strip, or move the strip out of it)")
    line = f"{scene.name}/{strip.name}"
    if play.retimed:
        return AudioSource(label=strip.name, path=path, fps=fps, first_frame=first,
                           n_frames=end - first, packed=packed, line=line,
                           rendered=render_strip(scene, strip, first, end))
    start_s = (first - content_start) / fps - strip.sound_offset
    return AudioSource(label=strip.name, path=path, fps=fps, first_frame=first,
                       n_frames=end - first, source_start_s=float(start_s), packed=packed,
                       line=line)


def file_source(scene, filepath: str, first_frame: int | None = None) -> AudioSource:
    """An audio file played from ``first_frame`` (default: the scene's start frame).

    Raises:
        SourceError: no path, file missing, bad fps.
    """
    import bpy

    fps = scene_fps(scene)
    check_fps(fps)
    if not filepath:
        raise SourceError("no audio file chosen (Source > File)")
    path = os.path.normpath(bpy.path.abspath(filepath))
    if not os.path.isfile(path):
        raise SourceError(f"audio file not found: {path}")
    return AudioSource(label=Path(path).stem, path=path, fps=fps,
                       first_frame=int(scene.frame_start if first_frame is None else first_frame),
                       n_frames=None, source_start_s=0.0)
