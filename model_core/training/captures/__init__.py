"""Fine-tuning data from an animator's own face captures: (speech, ARKit-52 curves) pairs.

An animator records themself with Live Link Face (or any ARKit face tracker, or exports
curves from their rig) and gets a folder of takes. This package turns each take into a
:class:`model_core.training.batches.Utterance` — 16 kHz mono speech plus ARKit-52 weights on the
model's frame grid — so the model can be fine-tuned on that face.

Supported layouts
-----------------

Animation files (any of these, chosen by extension / header):

- **Live Link Face CSV** (Epic Games' iOS app, *Export take → CSV*): header
  ``Timecode, BlendShapeCount, EyeBlinkLeft, …, TongueOut, HeadYaw, …, RightEyeRoll``; one row
  per captured frame, timecode ``HH:MM:SS:FF.fff`` (``FF`` frame within the second at the
  app's rate, usually 60 fps, sometimes 30; ``.fff`` the fraction of a frame). Our own
  ``streamtalker generate -o x.csv`` writes the same layout. Read by
  :func:`read_live_link_csv`.
- **Generic CSV** (``,`` ``;`` or tab separated) with a time column (``time``, ``t``,
  ``seconds``, ``timestamp`` in seconds; ``time_ms``, ``timestamp_ms``, ``ms`` in
  milliseconds) or a frame column (``frame``, ``frame_index``, ``index`` — needs ``fps``),
  or neither (one row per frame — needs ``fps``), plus ARKit-named columns in any common
  spelling (see :func:`arkit_channel_index`).
- **npz** as written by ``streamtalker generate -o x.npz``: ``weights`` float [T, D], optional
  ``names`` [D] (else D must be 52 in ARKit order), ``fps`` (or ``times`` [T] in seconds).
- **json** as written by ``streamtalker generate -o x.json``: ``{"fps", "names", "frames"}``.

Audio: anything :func:`model_core.load_audio` reads (wav, flac, ogg, mp3, aiff). Video
containers (``.mov``, ``.mp4``) and ``.m4a`` are not decoded: extract the audio first with
``ffmpeg -i take.mov -vn -ac 1 take.wav``.

Folders (:func:`load_capture_folder`): pairs are matched by file stem, searched recursively:
``take01.wav`` + ``take01.csv`` side by side, Live Link Face's export layout (one folder per
take holding ``<name>.csv`` and ``<name>.mov`` — extract ``<name>.wav`` beside it; the app's
``frame_log.csv``, ``take.json`` and ``thumbnail.jpg`` are ignored), or audio and animation
in separate folders (``audio/take01.wav`` + ``anim/take01.csv``) when the stem is unique.

Conventions: weights float32 in [0, 1] (values outside are clipped), columns in
``model_core.face.ARKIT_52`` order, missing channels 0; times float64 seconds relative to
the capture's first frame; the model grid puts frame ``i`` at ``i / fps`` seconds of audio.
All errors are ``ValueError`` (or ``FileNotFoundError`` / :class:`model_core.AudioError`)
whose message names the file, the line where relevant, and what to do.

By job: :mod:`.channels` (column names -> ARKit channels), :mod:`.csvrows` (CSV plumbing),
:mod:`.livelink` (Live Link Face CSV), :mod:`.tables` (any animation file), :mod:`.pairs`
(one take onto the model's grid), :mod:`.folders` (a folder of takes).
"""

from __future__ import annotations

from ...face import arkit_name
from .channels import ChannelIndex, arkit_channel_index
from .folders import AUDIO_EXTENSIONS, CaptureList, load_capture_folder
from .livelink import read_live_link_csv
from .pairs import VIDEO_EXTENSIONS, load_capture_pair, resample_frames
from .tables import ANIMATION_EXTENSIONS, read_arkit_table

__all__ = [
    "ANIMATION_EXTENSIONS",
    "AUDIO_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "CaptureList",
    "ChannelIndex",
    "arkit_channel_index",
    "arkit_name",
    "load_capture_folder",
    "load_capture_pair",
    "read_arkit_table",
    "read_live_link_csv",
    "resample_frames",
]
