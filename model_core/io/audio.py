"""Audio input: decode files with soundfile (or ffmpeg), mix to mono, resample with soxr.

The same :class:`Resampler` (a ``soxr.ResampleStream``) serves whole files and live input,
so a file and the same audio arriving from a microphone are resampled identically. Files are
decoded block by block (:class:`AudioFileReader`), so memory does not grow with their length.

The loudness rule (every way in: files, ``model.generate``, ``session.push``): samples must
be finite (NaN/inf is an :class:`AudioError`), and samples beyond ``±SAMPLE_LIMIT`` (4.0,
12 dB over full scale; real recordings, even float files that go over full scale, stay far
below it) are clipped to it with an :class:`AudioWarning` naming the source, so no finite
input, however loud, can overflow the features.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ..errors import AudioError, InputIsADirectoryError, InputNotFoundError, SettingError

#: Sample rate every model in this project consumes, Hz.
MODEL_SAMPLE_RATE = 16000

#: Samples beyond +-SAMPLE_LIMIT (12 dB over full scale) are clipped to it, with a warning.
SAMPLE_LIMIT = 4.0

#: Sample rates accepted for audio given with a rate (Hz), inclusive.
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 4000, 384000

#: The most channels an array of samples may have ([N, C]; files may have any number).
MAX_CHANNELS = 64

#: A mono mix this much quieter than its channels (20 dB) means the channels cancel out
#: (antiphase stereo): warned about, since the model then hears near silence.
CANCEL_RATIO = 0.01
#: Channels quieter than this mean square (-60 dBFS) are silence, not cancelling out.
SILENCE_MS = 1e-6

SUPPORTED_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff")
#: Decoded through ffmpeg (when installed), since libsndfile does not read them.
FFMPEG_EXTENSIONS = (".m4a", ".aac", ".mp4", ".mov", ".webm", ".mka", ".mkv", ".wma", ".ac3")


class AudioWarning(UserWarning):
    """Audio that was used but changed or suspect: clipped samples, a truncated file."""


def check_sample_rate(rate, what: str = "sample_rate") -> float:
    """Validate a sample rate given by a user or a file; return it as a float (Hz).

    Raises:
        ValueError: ``rate`` is a bool, not a real number, NaN/inf, or outside
            MIN_SAMPLE_RATE..MAX_SAMPLE_RATE (4000..384000 Hz), naming ``what``.
    """
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)):
        raise SettingError(f"{what} must be a number of Hz (e.g. 16000 or 44100), got {rate!r}")
    r = float(rate)
    if not (math.isfinite(r) and MIN_SAMPLE_RATE <= r <= MAX_SAMPLE_RATE):
        raise SettingError(f"{what} must be between {MIN_SAMPLE_RATE} and {MAX_SAMPLE_RATE} Hz "
                         f"(audio is recorded at 8000 to 384000 Hz; 16000, 44100 and 48000 "
                         f"are usual), got {rate!r}")
    return r


class Resampler:
    """Streaming sample-rate converter (soxr ``HQ``), mono float32.

    Args:
        in_rate: input sample rate in Hz (> 0).
        out_rate: output sample rate in Hz (> 0), 16000 for the model.

    ``process(x)`` takes float32 [N] and returns float32 [M] resampled samples; call it with
    ``last=True`` once at the end of the stream to drain the filter. When the rates are equal
    it is the identity (samples are returned unchanged, no delay).

    Raises:
        ValueError: if a rate is not a positive finite number.
    """

    def __init__(self, in_rate: float, out_rate: float = MODEL_SAMPLE_RATE):
        for name, rate in (("input sample rate", in_rate), ("output sample rate", out_rate)):
            if not (np.isfinite(rate) and rate > 0):
                raise SettingError(f"{name} must be a positive number of Hz, got {rate!r}")
        self.in_rate = float(in_rate)
        self.out_rate = float(out_rate)
        self._stream = None
        if self.in_rate != self.out_rate:
            self._stream = soxr.ResampleStream(self.in_rate, self.out_rate, 1, dtype="float32",
                                               quality="HQ")

    def process(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        """Resample a block of mono float32 samples [N] -> [M]; ``last`` drains the filter."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self._stream is None:
            return x
        return np.asarray(self._stream.resample_chunk(x, last=last), dtype=np.float32)


def to_mono_float32(samples, what: str = "audio", warn: bool = True) -> np.ndarray:
    """Validate and convert an array of samples to mono float32 [N] in [-1, 1] scale.

    Accepts float32/float64 (kept as is, float64 converted), int16 (/32768), int32
    (/2**31), uint8 (8-bit WAV convention, centred at 128); shapes [N], [N, C] and [C, N]
    with C <= :data:`MAX_CHANNELS` channels, fewer than the samples (averaged to mono).
    Samples beyond ``±SAMPLE_LIMIT`` are clipped to it (see the module docstring), with an
    :class:`AudioWarning` naming ``what`` when ``warn`` is true; so are channels that cancel
    out in the mono mix (:func:`warn_cancelled`).

    Raises:
        AudioError: empty input, non-finite samples (NaN/inf), unsupported dtype or shape.
    """
    return _mono_float32(samples, what, warn)[0]


def _mono_float32(samples, what: str = "audio", warn: bool = True,
                  channels_last: bool = False, energy: list | None = None
                  ) -> tuple[np.ndarray, int]:
    """:func:`to_mono_float32` that also returns how many samples were clipped.

    ``channels_last``: a 2-D array is always [N, C] (decoded files, ``session.push``), never
    guessed from its shape -- one stereo sample [1, 2] is one sample. ``energy``: a list
    [sum of squares of the channels / C, sum of squares of the mono mix, samples] added
    to, for :func:`warn_cancelled` over a stream (no warning is issued then)."""
    a = np.asarray(samples)
    if a.dtype == np.int16:
        a = a.astype(np.float32) / 32768.0
    elif a.dtype == np.int32:
        a = a.astype(np.float32) / 2147483648.0
    elif a.dtype == np.uint8:
        a = (a.astype(np.float32) - 128.0) / 128.0
    elif a.dtype in (np.float32, np.float64, np.float16):
        pass   # limited before the cast to float32, so float64 beyond float32's range is kept
    else:
        raise AudioError(f"{what}: unsupported sample dtype {a.dtype}; give float32 samples in "
                         f"[-1, 1] (or int16/int32 PCM)")
    if a.ndim not in (1, 2):
        raise AudioError(f"{what}: expected samples [N] (mono) or [N, channels], got shape "
                         f"{a.shape}")
    if a.ndim == 2 and channels_last:
        if a.shape[1] > MAX_CHANNELS:
            raise AudioError(f"{what}: samples are [N] (mono) or [N, channels] with at most "
                             f"{MAX_CHANNELS} channels, channels last; got shape {a.shape} "
                             f"(channels first? pass samples.T)")
    elif a.ndim == 2 and not (a.shape[1] <= MAX_CHANNELS and a.shape[0] > a.shape[1]) \
            and not (a.shape[0] <= MAX_CHANNELS and a.shape[1] > a.shape[0]):
        raise AudioError(f"{what}: cannot tell channels from samples in shape {a.shape}; "
                         f"give [N] mono or [N, channels] (at most {MAX_CHANNELS} channels)")
    if a.size == 0:
        raise AudioError(f"{what}: no samples (zero-length audio)")
    finite = np.isfinite(a)
    if not finite.all():
        bad = int((~finite).sum())
        raise AudioError(f"{what}: {bad} sample(s) are NaN or infinite; clean the audio first")
    clipped = 0
    if a.dtype != np.float32 or a.ndim == 2:
        clipped += _clip_count(a)
        if clipped:
            a = np.clip(a, -SAMPLE_LIMIT, SAMPLE_LIMIT)
        a = a.astype(np.float32, copy=False)
    if a.ndim == 2:
        if not channels_last and not (a.shape[1] <= MAX_CHANNELS and a.shape[0] > a.shape[1]):
            a = a.T                                   # [C, N] -> [N, C]
        chans = a
        a = a.mean(axis=1, dtype=np.float32)
        if chans.shape[1] > 1 and (energy is not None or warn):
            e = [float(np.mean(np.square(chans, dtype=np.float64), axis=0).mean()) * len(a),
                 float(np.square(a, dtype=np.float64).sum()), len(a)]
            if energy is not None:
                for i in range(3):
                    energy[i] += e[i]
            elif warn:
                warn_cancelled(what, *e)
    n = _clip_count(a)
    if n:
        a = np.clip(a, -SAMPLE_LIMIT, SAMPLE_LIMIT)
        clipped = max(clipped, n)
    if clipped and warn:
        warn_clipped(what, clipped)
    return np.ascontiguousarray(a, dtype=np.float32), clipped


def _clip_count(a: np.ndarray) -> int:
    """Samples of ``a`` beyond ``±SAMPLE_LIMIT``."""
    m = float(np.max(np.abs(a))) if a.size else 0.0
    if m <= SAMPLE_LIMIT:
        return 0
    return int(np.count_nonzero(np.abs(a) > SAMPLE_LIMIT))


def warn_cancelled(what: str, channels_energy: float, mono_energy: float, n: int) -> bool:
    """Issue an :class:`AudioWarning` when mixing to mono cancelled the channels out (the
    mix is :data:`CANCEL_RATIO` or less of the channels' energy while they are not silent:
    antiphase, i.e. phase-inverted, stereo); the model would hear near silence. Energies are
    sums of squares over the same ``n`` samples (the channels': their mean). Returns whether
    it warned."""
    if n <= 0 or channels_energy <= SILENCE_MS * n or mono_energy > CANCEL_RATIO * channels_energy:
        return False
    db = 10 * math.log10(max(mono_energy, 1e-30) / channels_energy)
    warnings.warn(AudioWarning(
        f"{what}: its channels cancel out when mixed to mono (the mix is {-db:.0f} dB quieter "
        f"than the channels: phase-inverted stereo?), so the model hears near silence; invert "
        f"one channel or use one channel only (e.g. ffmpeg -i IN -af pan=mono|c0=c0 OUT.wav)"),
        stacklevel=3)
    return True


def warn_clipped(what: str, n: int) -> None:
    """Issue the :class:`AudioWarning` for ``n`` samples of ``what`` clipped to the limit."""
    warnings.warn(AudioWarning(
        f"{what}: {n} sample(s) beyond ±{SAMPLE_LIMIT:g} ({20 * math.log10(SAMPLE_LIMIT):.0f} dB "
        f"over full scale) were clipped to it; the audio is far too loud (float samples "
        f"should lie in [-1, 1])"), stacklevel=3)


def to_model_rate(audio, sample_rate, what: str = "audio") -> np.ndarray:
    """Samples at any rate -> float32 mono [N'] at :data:`MODEL_SAMPLE_RATE`: the one path
    from decoded samples to the model (``model.generate``, the Blender add-on's strips).

    Args:
        audio: samples [N] or [N, C] (float, int16, int32 or uint8; see
            :func:`to_mono_float32`); float samples beyond ``±SAMPLE_LIMIT`` are clipped,
            with an :class:`AudioWarning` naming ``what``.
        sample_rate: rate of ``audio`` in Hz, 4000..384000 (resampled with soxr, HQ).
    Returns:
        float32 [round(N * 16000 / sample_rate)] (soxr's length), never beyond
        ``±SAMPLE_LIMIT``.
    Raises:
        AudioError: empty, non-finite or badly shaped audio; ValueError: a sample rate that
        is not a number of Hz in 4000..384000 (a bool included).
    """
    sample_rate = check_sample_rate(sample_rate, "sample_rate")
    x = to_mono_float32(audio, what=what)
    x = Resampler(sample_rate, MODEL_SAMPLE_RATE).process(x, last=True)
    if x.size and float(np.max(np.abs(x))) > SAMPLE_LIMIT:
        x = np.clip(x, -SAMPLE_LIMIT, SAMPLE_LIMIT)   # resampling overshoot, already warned
    return x


def load_audio(path: str | os.PathLike, sample_rate: int = MODEL_SAMPLE_RATE) -> np.ndarray:
    """Read an audio file, mix to mono and resample to ``sample_rate``.

    The same decoding as :class:`AudioFileReader` (which see), gathered into one array.

    Args:
        path: a wav/flac/ogg/mp3/aiff file (anything libsndfile decodes), or through ffmpeg
            when it is installed an m4a/aac/mp4/webm/... file.
        sample_rate: output rate in Hz (16000 for the model).

    Returns:
        float32 [N] mono samples at ``sample_rate``, roughly in [-1, 1] (never beyond
        ``±SAMPLE_LIMIT``).

    Raises:
        FileNotFoundError: the file does not exist.
        IsADirectoryError: the path is a directory.
        AudioError: the file is not decodable audio (saying how to fix it), is empty, or
            holds NaN/inf samples.
    Warns:
        AudioWarning: a truncated file (shorter than its header says), or samples clipped
            to ``±SAMPLE_LIMIT``; both name the file.
    """
    with AudioFileReader(path, sample_rate) as reader:
        blocks = list(reader)
    out = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    if out.size == 0:
        raise AudioError(f"{reader.path}: too short to resample to {sample_rate} Hz")
    return out


def _is_mpeg(head: bytes) -> bool:
    """Whether a file's first bytes are MPEG audio: an ID3 tag or an MPEG frame sync."""
    return head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF
                                       and head[1] & 0xE0 == 0xE0)


def _looks_like_text(head: bytes) -> bool:
    """Whether a file's first bytes are text (no audio container starts like that: their
    headers hold zero bytes)."""
    if not head or b"\0" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 3:          # not just a character cut at the end
            return False
        text = head[:e.start].decode("utf-8")
    return sum(c.isprintable() or c in "\r\n\t" for c in text) >= 0.95 * len(text)


def _open_source(p: Path):
    """What to hand libsndfile for ``p`` -- its path, or for a pipe (``/dev/stdin``) or
    another non-seekable file its bytes read into memory (libsndfile cannot decode FLAC from
    a pipe: "lost sync"), or None for a file named .mp3 that is not MPEG audio -- and the
    file's first bytes.

    Raises:
        FileNotFoundError: no such file (a broken link says where it points);
        IsADirectoryError: a folder; AudioError: a link loop, an unreadable or empty file,
            or a text file, each naming ``p``.
    """
    import io
    import stat as stat_mod
    try:
        st = os.stat(p)
    except FileNotFoundError:
        if os.path.islink(p):
            raise InputNotFoundError(f"audio file not found: {p} is a broken link (to "
                                    f"{os.readlink(p)})") from None
        raise InputNotFoundError(f"audio file not found: {p}") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise AudioError(f"{p}: a symbolic link loop (it leads back to itself); point it "
                             f"at the audio file") from None
        raise AudioError(f"{p}: cannot open it ({e.strerror or e})") from None
    if stat_mod.S_ISDIR(st.st_mode):
        raise InputIsADirectoryError(f"{p} is a directory; give an audio file "
                                f"({', '.join(SUPPORTED_EXTENSIONS)})")
    try:
        if stat_mod.S_ISREG(st.st_mode):
            with open(p, "rb") as f:
                head = f.read(512)
            source = str(p)
        else:                                  # a pipe or a device: read it all once
            with open(p, "rb") as f:
                data = f.read()
            head, source = data[:512], io.BytesIO(data)
    except OSError as e:
        raise AudioError(f"{p}: cannot read it ({e.strerror or e})") from None
    if not head:
        raise AudioError(f"{p}: the file is empty (0 bytes), not audio")
    if _looks_like_text(head):
        start = head[:40].decode("utf-8", "replace").splitlines()[0] if head.strip() else ""
        raise AudioError(f"{p}: a text file, not audio (it begins {start!r}); give a speech "
                         f"recording ({', '.join(SUPPORTED_EXTENSIONS)})")
    if isinstance(source, str) and p.suffix.lower() == ".mp3" and not _is_mpeg(head):
        source = None
    return source, head


_SHOULD_BE = re.compile(r"^\s*(\S+)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.M)
_PLACEHOLDER_SIZES = {0, 0xFFFFFFFF, 0x7FFFFFFF, 0xFFFFFFFF - 8}


def _truncation(extra_info: str) -> tuple[int, int] | None:
    """(declared, present) bytes of the audio data when libsndfile's header log says the
    file is shorter than its header declares, else None (placeholder sizes of streamed WAVs
    and a few bytes of padding are not truncation)."""
    found = {}
    for key, declared, present in _SHOULD_BE.findall(extra_info or ""):
        d, p = int(declared), int(present)
        if d in _PLACEHOLDER_SIZES or d - p <= 8:
            continue
        found[key.lower()] = (d, p)
    for key in ("data", "ssnd"):   # the audio chunk itself, where the log names it
        if key in found:
            return found[key]
    return max(found.values(), key=lambda dp: dp[0] - dp[1]) if found else None


class AudioFileReader:
    """Decode an audio file block by block into mono float32 samples at ``sample_rate``:
    memory stays the same whatever the file's length.

    libsndfile (soundfile) decodes wav/flac/ogg/opus/mp3/aiff/...; files it cannot read (m4a,
    aac, mp4, webm, ...) are decoded by ffmpeg when it is on PATH (Debian: ``apt-get install
    ffmpeg``). Channels are averaged to mono, then resampled with :class:`Resampler`;
    concatenating the blocks gives exactly what :func:`load_audio` returns.

    Args:
        path: the audio file.
        sample_rate: output rate in Hz (16000 for the model).
        block_s: seconds of source audio decoded per block (> 0).

    Attributes:
        path (Path); decoder: ``"soundfile"`` or ``"ffmpeg"``; source_rate: Hz; channels;
        duration_s: the length the file declares, seconds (None when unknown);
        n_out: samples yielded so far; clipped: samples clipped to ``±SAMPLE_LIMIT`` so far.

    Iterating yields float32 [n] blocks (n >= 0; the last drains the resampler). Use as a
    context manager or call :meth:`close` (an ffmpeg process is ended there).

    Raises:
        FileNotFoundError, IsADirectoryError: on creation.
        AudioError: on creation, a file neither decoder reads (saying how to fix it); while
            iterating, decoding failed part-way, NaN/inf samples, or no samples at all.
    Warns:
        AudioWarning: on creation, a truncated file (shorter than its header declares); at
            the end, samples clipped to ``±SAMPLE_LIMIT``. Both name the file.
    """

    def __init__(self, path: str | os.PathLike, sample_rate: int = MODEL_SAMPLE_RATE,
                 block_s: float = 1.0):
        p = Path(path)
        self.path = p
        if not (isinstance(block_s, (int, float)) and math.isfinite(block_s) and block_s > 0):
            raise SettingError(f"block_s must be a positive number of seconds, got {block_s!r}")
        self.sample_rate = sample_rate
        self.block_s = float(block_s)
        self.clipped = 0
        self.n_out = 0
        self._energy = [0.0, 0.0, 0]
        self._sf: sf.SoundFile | None = None
        self._proc: subprocess.Popen | None = None
        self._done = False
        source, head = _open_source(p)
        try:
            if source is None:      # named .mp3 but not MPEG audio: libsndfile's mpg123
                raise ValueError("not MPEG audio")   # would print noise; ffmpeg decides
            self._sf = sf.SoundFile(source)
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
            sf_error = str(e).replace(f"'{source}'", str(p)) if source is not None else str(e)
            if not isinstance(source, (str, type(None))):    # piped: bytes in memory
                raise AudioError(f"{p}: the piped audio could not be decoded ({e}); pipe WAV, "
                                 f"FLAC, OGG or MP3, or give a file") from None
            self._open_ffmpeg(sf_error, head)
        else:
            self.decoder = "soundfile"
            self.source_rate = float(self._sf.samplerate)
            self.channels = int(self._sf.channels)
            frames = self._sf.frames
            self.duration_s = frames / self.source_rate if frames > 0 else None
            self._dtype = "float64" if self._sf.subtype == "DOUBLE" else "float32"
            trunc = _truncation(getattr(self._sf, "extra_info", ""))
            if trunc is not None:
                d, present = trunc
                warnings.warn(AudioWarning(
                    f"{p}: the file is truncated: its header declares {d} bytes of audio but "
                    f"only {present} are there ({100 * present / d:.0f} %); using the "
                    f"{self.duration_s or 0:.2f} s present"), stacklevel=2)
        try:
            check_sample_rate(self.source_rate, what=f"{p}: sample rate")
        except ValueError as e:
            self.close()
            raise AudioError(str(e)) from None
        self._resampler = Resampler(self.source_rate, sample_rate)
        self._block = max(1, int(round(self.block_s * self.source_rate)))

    # -- ffmpeg ------------------------------------------------------------------------------
    def _open_ffmpeg(self, sf_error: str, head: bytes = b"") -> None:
        p = self.path
        formats = ", ".join(SUPPORTED_EXTENSIONS)
        ffmpeg, ffprobe = shutil.which("ffmpeg"), shutil.which("ffprobe")
        if p.suffix.lower() == ".mp3" and not _is_mpeg(head):
            sf_error = f"named .mp3 but not MP3 audio (it begins with bytes {head[:8].hex(' ')})"
        if ffmpeg is None or ffprobe is None:
            if p.suffix.lower() in FFMPEG_EXTENSIONS:
                raise AudioError(f"{p}: cannot decode {p.suffix} audio: libsndfile does not read "
                                 f"it and ffmpeg is not installed; install ffmpeg (Debian/Ubuntu: "
                                 f"apt-get install ffmpeg) or convert the file to WAV or FLAC")
            raise AudioError(f"{p}: not a readable audio file ({sf_error}); supported formats: "
                             f"{formats} (and, with ffmpeg installed, "
                             f"{', '.join(FFMPEG_EXTENSIONS)})")
        probe = subprocess.run(
            [ffprobe, "-v", "error", "-select_streams", "a", "-show_entries",
             "stream=index,sample_rate,channels:stream_tags=language,title:format=duration",
             "-of", "json", str(p)],
            capture_output=True, text=True, stdin=subprocess.DEVNULL)
        try:
            info = json.loads(probe.stdout or "{}")
            st = info["streams"][0]
            if len(info["streams"]) > 1:
                names = [", ".join(v for v in (x.get("tags") or {}).values()) or
                         f"stream {i}" for i, x in enumerate(info["streams"])]
                warnings.warn(AudioWarning(
                    f"{p}: it holds {len(info['streams'])} audio streams ({'; '.join(names)}); "
                    f"the first is used. To use another, extract it: ffmpeg -i {p.name} -map "
                    f"0:a:1 -vn OUT.wav"), stacklevel=3)
            self.source_rate = float(st["sample_rate"])
            self.channels = int(st["channels"])
        except (ValueError, KeyError, IndexError, TypeError):
            why = (probe.stderr.strip().splitlines() or ["no audio stream"])[-1]
            raise AudioError(f"{p}: not a readable audio file (soundfile: {sf_error}; ffmpeg: "
                             f"{why}); supported formats: {formats}, "
                             f"{', '.join(FFMPEG_EXTENSIONS)}") from None
        if self.channels < 1:
            raise AudioError(f"{p}: the audio stream has no channels")
        try:
            dur = float(info.get("format", {}).get("duration"))
            self.duration_s = dur if math.isfinite(dur) and dur > 0 else None
        except (TypeError, ValueError):
            self.duration_s = None
        self.decoder = "ffmpeg"
        self._dtype = "float32"
        self._proc = subprocess.Popen(
            [ffmpeg, "-v", "error", "-nostdin", "-i", str(p), "-map", "0:a:0", "-f", "f32le",
             "-acodec", "pcm_f32le", "-"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def _read_ffmpeg(self, frames: int) -> np.ndarray:
        want = frames * self.channels * 4
        buf = bytearray()
        while len(buf) < want:
            chunk = self._proc.stdout.read(want - len(buf))
            if not chunk:
                break
            buf += chunk
        usable = len(buf) // (4 * self.channels) * 4 * self.channels
        return np.frombuffer(bytes(buf[:usable]), "<f4").reshape(-1, self.channels)

    def _finish_ffmpeg(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.stdout.close()
        err = proc.stderr.read().decode(errors="replace").strip()
        proc.stderr.close()
        if proc.wait() != 0:
            why = err.splitlines()[-1] if err else f"exit status {proc.returncode}"
            raise AudioError(f"{self.path}: ffmpeg could not decode the file ({why})")

    # -- reading -----------------------------------------------------------------------------
    def _read(self) -> np.ndarray:
        """The next block, float [n, channels] (n = 0 at the end)."""
        if self._sf is not None:
            try:
                return self._sf.read(self._block, dtype=self._dtype, always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as e:
                raise AudioError(f"{self.path}: decoding failed after {self.n_out / self.sample_rate:.2f} s "
                                 f"({e}); the file is damaged or truncated") from None
        return self._read_ffmpeg(self._block)

    def __iter__(self):
        if self._done:
            return
        got_any = False
        try:
            while True:
                data = self._read()
                if len(data) == 0:
                    break
                got_any = True
                if data.shape[1] > 1:
                    x, n = _mono_float32(data, what=str(self.path), warn=False,
                                         channels_last=True, energy=self._energy)
                else:
                    x, n = _mono_float32(data[:, 0], what=str(self.path), warn=False)
                self.clipped += n
                y = self._limit(self._resampler.process(x))
                self.n_out += len(y)
                yield y
            if self._proc is not None:
                self._finish_ffmpeg()
            if not got_any:
                raise AudioError(f"{self.path}: the file holds no samples (zero-length audio)")
            y = self._limit(self._resampler.process(np.zeros(0, np.float32), last=True))
            self.n_out += len(y)
            yield y
            if self.clipped:
                warn_clipped(str(self.path), self.clipped)
            warn_cancelled(str(self.path), *self._energy)
        finally:
            self._done = True
            self.close()

    def _limit(self, y: np.ndarray) -> np.ndarray:
        # resampling a clipped signal can overshoot the limit a little: keep it inside,
        # silently (the clipping itself is reported)
        if self.clipped and y.size and float(np.max(np.abs(y))) > SAMPLE_LIMIT:
            y = np.clip(y, -SAMPLE_LIMIT, SAMPLE_LIMIT)
        return y

    def close(self) -> None:
        """Release the file (and end an ffmpeg process still running). Idempotent."""
        if self._sf is not None:
            self._sf.close()
            self._sf = None
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            for f in (proc.stdout, proc.stderr):
                try:
                    f.close()
                except OSError:
                    pass
            proc.wait()

    def __enter__(self) -> "AudioFileReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
