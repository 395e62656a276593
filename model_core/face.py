"""The face: one source for every rule about ARKit-52 channels (layer 0 of
docs/architecture.md; pure Python, imports nothing of model_core).

* the 52 names (:data:`ARKIT_52`, Apple's ``ARFaceAnchor.BlendShapeLocation`` raw values,
  lowerCamelCase, ``Left``/``Right`` suffixes, in Apple's documented order) and the Live
  Link Face CSV layout (Epic Games: ``Timecode, BlendShapeCount``, the same 52 shapes in
  UpperCamelCase in the app's own order, then 9 head/eye rotation columns);
* the ONE name matcher (:func:`name_forms`, :func:`arkit_name`, :func:`match_names`): rigs
  and capture files spell the names ``jawOpen``, ``JawOpen``, ``jaw_open``, ``eyeBlink_L``,
  ``eyeBlink.L``, ``L_eyeBlink``, ``EYEBLINKLEFT``, with prefixes such as
  ``blendShape1.``, ``Face:`` or ``BS_``;
* the face regions, from one table (:data:`FACE_PARTS`, :func:`face_part`): the strength
  regions (:func:`region_of`), :data:`LIP_CHANNELS`, :data:`UPPER_CHANNELS`,
  :data:`UPPER_FACE_CHANNELS`, :data:`MOUTH_CHANNELS`, :func:`is_lip_channel`;
* the viseme classes of the training-only auxiliary heads (:data:`VISEME_CLASSES`);
* the face rigs the model can drive (:data:`RIG_KINDS`: ARKit, the 15 Oculus/Meta visemes,
  VRM and MMD vowels), told apart by their shape-key names (:func:`detect_rig`,
  :func:`match_rig`, the same matcher);
* the frame-count rule (:func:`frame_count`, :func:`sample_frames` and its inverse
  :func:`frame_samples`) and the frame-rate rule (:func:`check_fps`).
"""

from __future__ import annotations

import math
import numbers
import re
import unicodedata
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterable, Mapping

from .errors import SettingError

ARKIT_52: tuple[str, ...] = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft", "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight",
    "eyeLookOutRight", "eyeLookUpRight", "eyeSquintRight", "eyeWideRight", "jawForward",
    "jawLeft", "jawRight", "jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft",
    "mouthRight", "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthPressLeft",
    "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft",
    "mouthUpperUpRight", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "noseSneerLeft",
    "noseSneerRight", "tongueOut",
)



def _live_link_face_order() -> tuple[str, ...]:
    """Apple's order with the app's two swaps (jawRight before jawLeft, mouthRight before
    mouthLeft), in UpperCamelCase."""
    order = list(ARKIT_52)
    for a, b in (("jawLeft", "jawRight"), ("mouthLeft", "mouthRight")):
        i, j = order.index(a), order.index(b)
        order[i], order[j] = order[j], order[i]
    return tuple(n[0].upper() + n[1:] for n in order)


#: Live Link Face CSV blendshape columns, in the app's order (UpperCamelCase): EyeBlinkLeft,
#: ..., JawForward, JawRight, JawLeft, JawOpen, MouthClose, MouthFunnel, MouthPucker,
#: MouthRight, MouthLeft, MouthSmileLeft, ..., TongueOut.
LIVE_LINK_FACE_SHAPES: tuple[str, ...] = _live_link_face_order()

#: The 9 rotation columns Live Link Face appends after the blendshapes (radians).
LIVE_LINK_FACE_ROTATIONS: tuple[str, ...] = (
    "HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
    "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
)

assert len(ARKIT_52) == 52 and len(set(ARKIT_52)) == 52
assert sorted(n[0].lower() + n[1:] for n in LIVE_LINK_FACE_SHAPES) == sorted(ARKIT_52)


# --------------------------------------------------------------------------------------
# The name matcher
# --------------------------------------------------------------------------------------

#: Tokens of one name part: camelCase words, UPPER runs, digits, and runs of other letters
#: (kana, kanji, accented letters: MMD's ``あ``, ``まばたき``).
_TOKEN = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+|[^\W\dA-Za-z_]+")
#: What separates the parts of a name (``blendShape1.jaw_open``, ``Face:mouthSmile_L``).
_PART_SEP = re.compile(r"[.:|/\\_\-\s]+")
_SIDES = {"l": "left", "left": "left", "r": "right", "right": "right"}


def name_tokens(name: str) -> tuple[str, ...]:
    """Lowercase tokens of a channel, column or shape-key name: split at separators
    (``. : | / \\ _ -`` and white space) and camelCase boundaries; a BOM, quotes and outer
    spaces are ignored. The name is NFKC-normalised first (half-width katakana and
    full-width Latin letters and digits read as their usual forms).

    >>> name_tokens("eyeBlink_L"), name_tokens("blendShape1.jaw_open"), name_tokens("あ２")
    (('eye', 'blink', 'l'), ('blend', 'shape', '1', 'jaw', 'open'), ('あ', '2'))
    """
    s = unicodedata.normalize("NFKC", str(name)).strip().strip("\ufeff\"' ")
    return tuple(t.lower() for part in _PART_SEP.split(s) if part for t in _TOKEN.findall(part))


def _canonical(tokens: tuple[str, ...]) -> str | None:
    """One spelling for a token run: sides normalised (a last ``l``/``r`` is
    ``left``/``right``; a leading side token moves to the end: ``L_eyeBlink``), joined
    without separators (so ``EYEBLINKLEFT`` equals ``eyeBlinkLeft``)."""
    toks = list(tokens)
    if not toks:
        return None
    if toks[-1] in _SIDES:
        toks[-1] = _SIDES[toks[-1]]
    elif len(toks) > 1 and toks[0] in _SIDES:
        toks = toks[1:] + [_SIDES[toks[0]]]
    return "".join(toks)


def name_forms(name: str) -> list[str]:
    """The canonical spellings ``name`` can stand for, longest first: the whole name, then
    the name without 1, 2, ... leading tokens (a prefix such as ``blendShape1.`` or
    ``Face:``). Two names match when the first form of one is a form of the other; the
    position says how much prefix was dropped (0 = an exact match)."""
    toks = name_tokens(name)
    out = []
    for k in range(len(toks)):
        c = _canonical(toks[k:])
        if c is not None:
            out.append(c)
    return out


def name_key(name: str) -> str | None:
    """The canonical spelling of the whole ``name`` (its first :func:`name_forms`), or None
    for a name with no letters or digits."""
    forms = name_forms(name)
    return forms[0] if forms else None


def match_name(name: str, keys: Mapping[str, object]) -> tuple[object, int] | None:
    """What ``name`` stands for among ``keys`` ({canonical spelling: value}, e.g. from
    :func:`name_key`): ``(value, prefix_tokens)`` for the longest form of ``name`` found
    (``prefix_tokens`` 0 = exact), or None."""
    for k, form in enumerate(name_forms(name)):
        if form in keys:
            return keys[form], k
    return None


_ARKIT_KEYS = {n.lower(): n for n in ARKIT_52}


def arkit_name(name: str) -> str | None:
    """The ARKit-52 name (:data:`ARKIT_52` spelling) a column or shape-key name stands for,
    or None. Case-insensitive; accepts ``EyeBlinkLeft``, ``eyeBlinkLeft``, ``eyeBlink_L``,
    ``eye_blink_left``, ``eyeBlink.L``, ``EYEBLINKLEFT``, ``L_eyeBlink``, ``Left_EyeBlink``
    and prefixes (``blendShape1.eyeBlinkLeft``, ``blendshapes.jawOpen``,
    ``Face:mouthSmile_L``, ``BS_jawOpen``, ``blendShape1jawOpen``)."""
    hit = match_name(name, _ARKIT_KEYS)
    return None if hit is None else str(hit[0])


def match_names(channels: Iterable[str], names: Iterable[str],
                aliases: Mapping[str, Iterable[str]] | None = None) -> dict[str, str]:
    """Match channels to names (shape keys, columns): ``{channel: name}`` for the matched
    channels, in channel order; each name serves at most one channel.

    A name serves the channel its longest form equals (:func:`name_forms`): exact matches
    are assigned first, then names with a prefix; among several names for one channel the
    shortest wins (then the first). A name with no letters (``Basis`` included: it matches
    no channel) is ignored. ``aliases`` ({channel: other spellings}) lets a channel answer
    to more spellings than its own name (a rig kind's: ``viseme_I`` also answers to ``ih``
    of ``vrc.v_ih``); None for none.
    """
    chans = list(channels)
    keys = {}
    for c in chans:
        for spelling in (c, *((aliases or {}).get(c, ()))):
            k = name_key(spelling)
            if k is not None:
                keys.setdefault(k, c)
    found: dict[str, list[tuple[int, str]]] = {}
    for n in names:
        hit = match_name(n, keys)
        if hit is not None:
            found.setdefault(hit[0], []).append((hit[1], n))
    out: dict[str, str] = {}
    used: set[str] = set()
    for exact in (True, False):
        for c in chans:
            if c in out:
                continue
            best = None
            for k, n in found.get(c, ()):
                if (k == 0) == exact and n not in used and (best is None or len(n) < len(best)):
                    best = n
            if best is not None:
                out[c] = best
                used.add(best)
    return {c: out[c] for c in chans if c in out}


# --------------------------------------------------------------------------------------
# Regions
# --------------------------------------------------------------------------------------

#: Regions an animator sets a strength for (the add-on's panel), in display order.
STRENGTH_REGIONS = ("lips", "brows", "eyes", "blinks")


#: Regions of the rig kinds' own channels (:func:`region_of`; filled below RIG_KINDS).
_RIG_REGIONS: dict[str, str] = {}


def _flat(name: str) -> str:
    return arkit_name(name) or "".join(name_tokens(name))


#: THE face-region table: the start of a channel's name (lowercase, any spelling flattened)
#: -> its part of the face; the first match wins. Every region and channel set below is
#: derived from it:
#:
#: * ``"lips"``: jaw* and mouth*, the model's lip channels (:func:`is_lip_channel`,
#:   :data:`LIP_CHANNELS`: guidance_channels="lips", the lip temperature, the lip loss and
#:   the lip-sync metrics);
#: * ``"mouth"``: the rest that speech drives (cheekPuff, tongueOut): with the lips, the
#:   :data:`MOUTH_CHANNELS` and the *Lips* strength;
#: * ``"upper"``: cheekSquint*, noseSneer*: the upper face outside the brows and eyes (no
#:   strength scales them);
#: * ``"brows"``, ``"eyes"``, ``"blinks"``: as named (:data:`UPPER_CHANNELS`).
FACE_PARTS: tuple[tuple[str, str], ...] = (
    ("eyeblink", "blinks"), ("eye", "eyes"), ("brow", "brows"), ("jaw", "lips"),
    ("mouth", "lips"), ("cheekpuff", "mouth"), ("tongue", "mouth"), ("cheeksquint", "upper"),
    ("nose", "upper"),
)
#: Each part's strength region (:data:`STRENGTH_REGIONS`; None: no strength scales it).
_PART_STRENGTH = {"blinks": "blinks", "eyes": "eyes", "brows": "brows", "lips": "lips",
                  "mouth": "lips", "upper": None}


def face_part(name: str) -> str | None:
    """The part of the face a channel is (any spelling; :data:`FACE_PARTS`), or None for a
    name outside the table (a rig kind's visemes and vowels)."""
    f = _flat(name).lower()
    for prefix, part in FACE_PARTS:
        if f.startswith(prefix):
            return part
    return None


def is_lip_channel(name: str) -> bool:
    """True for the model's lip channels: jaw* and mouth* (any spelling; part ``"lips"``
    of :data:`FACE_PARTS`)."""
    return face_part(name) == "lips"


def region_of(name: str) -> str | None:
    """The strength region of a channel (any spelling; :data:`FACE_PARTS`): ``blinks``
    (eyeBlink*), ``eyes`` (other eye*), ``brows`` (brow*), ``lips`` (jaw, mouth, cheekPuff,
    tongueOut: what speech drives), or None for cheekSquint* and noseSneer* (no strength
    scales them). A rig kind's own channels (:data:`RIG_KINDS`) count as the ARKit channels
    they come from: ``blink`` / ``まばたき`` are blinks, MMD's ``上`` / ``下`` brows; visemes,
    vowels and other names outside the table are lips."""
    if name in _RIG_REGIONS:
        return _RIG_REGIONS[name]
    part = face_part(name)
    return "lips" if part is None else _PART_STRENGTH[part]


def _channels(*parts: str) -> tuple[str, ...]:
    return tuple(n for n in ARKIT_52 if face_part(n) in parts)


#: The model's lips: jaw* and mouth* (27 channels), what guidance_channels="lips", the lip
#: temperature, the lip loss weight and the lip-sync metrics act on.
LIP_CHANNELS: tuple[str, ...] = _channels("lips")
#: Brows and eyes (19 channels), the upper face of the metrics.
UPPER_CHANNELS: tuple[str, ...] = _channels("brows", "eyes", "blinks")
#: Everything above the mouth: brows, eyes, cheek squint, nose sneer (23 channels); the
#: teacher draws them at random, independent of the phones.
UPPER_FACE_CHANNELS: tuple[str, ...] = _channels("brows", "eyes", "blinks", "upper")
#: The rest: lips, cheek puff and tongue (29 channels), which speech drives; the channels the
#: *Lips* strength scales.
MOUTH_CHANNELS: tuple[str, ...] = _channels("lips", "mouth")

assert {face_part(n) for n in ARKIT_52} == set(_PART_STRENGTH)

# --------------------------------------------------------------------------------------
# Visemes
# --------------------------------------------------------------------------------------

#: The viseme classes, in index order (``"sil"`` is 0): the teacher's targets
#: (``model_core.training.teacher.VISEME_TARGETS``) and the rows of the network's
#: training-only auxiliary viseme heads (checkpoints store them as [33, C] in this order;
#: older ones as [27, C], the first 27, which loading pads). The last six are the shapes
#: English lacks (IPA phones, ``model_core.training.phonemes``): ``EE`` close-mid front e,
#: ``UE`` front rounded close (y), ``OE`` front rounded mid (ø œ), ``UI`` close unrounded
#: back (ɯ ɨ), ``BF`` bilabial fricative (β ɸ, not sealed), ``RT`` trill or tap (r ɾ).
VISEME_CLASSES: tuple[str, ...] = (
    "sil", "NEU", "PP", "FF", "TH", "DD", "NN", "LL", "SS", "SH", "KK", "RR", "WW", "YY",
    "HH", "AA", "AE", "AH", "AO", "OH", "EH", "IH", "IY", "UH", "UW", "ER", "AX",
    "EE", "UE", "OE", "UI", "BF", "RT")

# --------------------------------------------------------------------------------------
# Face rigs
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RigKind:
    """A kind of face rig the model can drive: its channels as the rig names them.

    Attributes:
        name: ``"arkit"``, ``"oculus"``, ``"vrm"`` or ``"mmd"`` (the ``--rig`` value).
        label: what the panel shows.
        shapes: the mouth channels, as the rig names them (ARKit: :data:`MOUTH_CHANNELS`;
            Oculus: ``viseme_sil`` ... ``viseme_U``; VRM: ``aa ih ou ee oh``; MMD:
            ``あ い う え お``); a rig kind is recognised by how many of these its shape
            keys match.
        shape_set: the fitted map from ARKit-52 weights to these shapes
            (``model_core/weights/rig_maps.json``: ``"visemes"`` or ``"vowels"``); ``""``
            for ARKit (no conversion).
        shape_ids: the map's name for each of ``shapes``, same order (``"sil"``, ``"PP"``,
            ... ; ``"a" "i" "u" "e" "o"``).
        passthrough: ``(channel, ARKit sources)`` pairs: channels whose weight is the mean
            of ARKit channels of the model (blinks, brows, eyes): the 23
            :data:`UPPER_FACE_CHANNELS` under their own names, plus the kind's both-eyes
            blink (and MMD's brows ``上`` / ``下``).
        aliases: ``{channel: other spellings}`` the matcher accepts besides the name.
        both_eyes: the both-eyes blink channel, keyed only where the rig has no per-eye
            blink keys (``eyeBlinkLeft`` / ``eyeBlinkRight`` in any spelling); None for
            ARKit.
    """

    name: str
    label: str
    shapes: tuple[str, ...]
    shape_set: str = ""
    shape_ids: tuple[str, ...] = ()
    passthrough: tuple[tuple[str, tuple[str, ...]], ...] = ()
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    both_eyes: str | None = None

    @property
    def channels(self) -> tuple[str, ...]:
        """The output channels: ARKit-52 for ARKit, else the shapes then the pass-through
        channels."""
        if not self.shape_set:
            return ARKIT_52
        return self.shapes + tuple(c for c, _ in self.passthrough)


_OCULUS_IDS = ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "I",
               "O", "U")
_VOWEL_IDS = ("a", "i", "u", "e", "o")
#: Other spellings of the per-eye blinks: VRM's ``blinkLeft`` / ``Blink_L``, VRChat's
#: ``vrc.blink_left``, VRoid's ``Fcl_EYE_Close_L``.
_EYE_ALIASES = {"eyeBlinkLeft": ("blink_L", "EYE_Close_L"),
                "eyeBlinkRight": ("blink_R", "EYE_Close_R")}
_UPPER = tuple((c, (c,)) for c in UPPER_FACE_CHANNELS)
_BOTH_EYES = ("eyeBlinkLeft", "eyeBlinkRight")


def _rig_kinds() -> dict[str, RigKind]:
    oculus = tuple(f"viseme_{v}" for v in _OCULUS_IDS)
    # bare ids (``PP``: ``vrc.v_pp`` with its prefix dropped) and VRChat's ih / oh / ou
    oc_alias = {c: (v,) for c, v in zip(oculus, _OCULUS_IDS)}
    oc_alias.update({"viseme_I": ("I", "ih"), "viseme_O": ("O", "oh"), "viseme_U": ("U", "ou")})
    vrm = ("aa", "ih", "ou", "ee", "oh")
    mmd = ("あ", "い", "う", "え", "お")
    return {
        "arkit": RigKind("arkit", "ARKit (52 blendshapes)", MOUTH_CHANNELS),
        "oculus": RigKind(
            "oculus", "Oculus / Meta visemes (15)", oculus, "visemes", _OCULUS_IDS,
            _UPPER + (("blink", _BOTH_EYES),),
            {**oc_alias, **_EYE_ALIASES, "blink": ("vrc.blink", "EYE_Close")}, "blink"),
        # VRM 1.0 expressions aa ih ou ee oh; VRM 0.x presets A I U E O; VRoid Fcl_MTH_A ...
        "vrm": RigKind(
            "vrm", "VRM vowels (aa ih ou ee oh)", vrm, "vowels", _VOWEL_IDS,
            _UPPER + (("blink", _BOTH_EYES),),
            {**{c: (v.upper(),) for c, v in zip(vrm, _VOWEL_IDS)}, **_EYE_ALIASES,
             "blink": ("EYE_Close",)}, "blink"),
        # MMD's standard morphs: vowels あいうえお (katakana and romanised too), まばたき
        # (blink), eyebrows 上 (up) and 下 (down)
        "mmd": RigKind(
            "mmd", "MMD vowels (あ い う え お)", mmd, "vowels", _VOWEL_IDS,
            _UPPER + (("まばたき", _BOTH_EYES),
                      ("上", ("browInnerUp", "browOuterUpLeft", "browOuterUpRight")),
                      ("下", ("browDownLeft", "browDownRight"))),
            {**{c: (v, k) for c, v, k in zip(mmd, _VOWEL_IDS, "アイウエオ")}, **_EYE_ALIASES,
             "まばたき": ("blink", "EYE_Close")}, "まばたき"),
    }


#: The face rigs, in the order a tie is broken (ARKit first: the model's own channels).
RIG_KINDS: dict[str, RigKind] = _rig_kinds()


def rig_kind(name: str) -> RigKind:
    """The :class:`RigKind` called ``name`` (case-insensitive).

    Raises:
        ValueError: no such kind (the message lists them).
    """
    kind = RIG_KINDS.get(str(name).strip().lower())
    if kind is None:
        raise SettingError(f"unknown face rig {name!r}: choose one of {', '.join(RIG_KINDS)}")
    return kind


def match_rig(kind: str, names: Iterable[str]) -> dict[str, str]:
    """Match a rig kind's channels to shape-key names: ``{channel: name}`` (see
    :func:`match_names`; ARKit is exactly ``match_names(ARKIT_52, names)``). The kind's
    both-eyes blink is left out where a per-eye blink matched, so no eye closes twice.

    Raises:
        ValueError: unknown kind.
    """
    k = rig_kind(kind)
    names = list(names)
    found = match_names(k.channels, names, k.aliases)
    if k.both_eyes and any(c in found for c in _BOTH_EYES):
        found.pop(k.both_eyes, None)
    return found


@dataclass(frozen=True)
class RigMatch:
    """What :func:`detect_rig` found: ``kind`` (a :data:`RIG_KINDS` name), ``mapping``
    ({channel: shape key}), ``n_shapes`` (the kind's mouth shapes) and ``n_matched`` (how
    many of them have a shape key)."""

    kind: str
    mapping: dict
    n_shapes: int
    n_matched: int


def detect_rig(names: Iterable[str]) -> RigMatch:
    """The kind of face rig a mesh's shape-key names are: the kind whose mouth shapes
    (:attr:`RigKind.shapes`) match the largest share of themselves (then the most of them,
    then the first of :data:`RIG_KINDS`: an avatar with both ARKit and viseme keys is
    ARKit). A kind needs at least 2 matched shapes; with none that good, ARKit.

    Args:
        names: the shape-key names (the reference key may be included: it matches nothing).
    Returns:
        :class:`RigMatch`.
    """
    names = list(names)
    best = None
    for k in RIG_KINDS.values():
        found = match_rig(k.name, names)
        n = sum(1 for c in k.shapes if c in found)
        score = (n / len(k.shapes), n)
        if n >= 2 and (best is None or score > best[0]):
            best = (score, RigMatch(k.name, found, len(k.shapes), n))
    if best is None:
        found = match_rig("arkit", names)
        return RigMatch("arkit", found, len(MOUTH_CHANNELS),
                        sum(1 for c in MOUTH_CHANNELS if c in found))
    return best[1]


for _k in RIG_KINDS.values():
    for _c, _src in _k.passthrough:
        if _c not in ARKIT_52:
            _RIG_REGIONS[_c] = region_of(_src[0])

# --------------------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------------------


def fps_fraction(fps) -> Fraction:
    """A frame rate as an exact fraction: the nearest with a denominator of at most 1001
    (30.0 is 30, 29.97 is 2997/100, ``30000 / 1001`` computed in floats is 30000/1001)."""
    return Fraction(fps).limit_denominator(1001)


def frame_count(duration_s, fps) -> int:
    """Frames of ``duration_s`` seconds at ``fps``: ``round(duration_s * fps)``, halves
    rounded up, computed exactly. This is the one rule for how many frames audio gets.

    Args:
        duration_s: seconds, >= 0: an int, a :class:`~fractions.Fraction` (exact, e.g.
            ``Fraction(n_samples, sample_rate)``) or a float (taken as the decimal it prints
            as, so ``n / 16000`` computed in floats counts like the exact fraction).
        fps: frames per second (see :func:`fps_fraction`).
    Returns:
        int >= 0.
    """
    d = duration_s if isinstance(duration_s, (int, Fraction)) else Fraction(repr(float(duration_s)))
    return int(math.floor(d * fps_fraction(fps) + Fraction(1, 2)))


def sample_frames(n_samples: int, sample_rate, fps) -> int:
    """Frames of ``n_samples`` samples at ``sample_rate`` Hz: :func:`frame_count` of the
    exact duration."""
    return frame_count(Fraction(int(n_samples)) / Fraction(sample_rate), fps)


def frame_samples(n_frames: int, sample_rate, fps) -> int:
    """Samples at ``sample_rate`` Hz that last ``n_frames`` frames at ``fps``:
    ``round(n_frames * sample_rate / fps)``, halves rounded up, computed exactly -- the
    inverse of :func:`sample_frames` (``sample_frames(frame_samples(n, sr, fps), sr, fps) ==
    n`` whenever a frame is at least one sample long). The one rule for how much audio N
    frames get."""
    return int(math.floor(Fraction(int(n_frames)) * Fraction(sample_rate) / fps_fraction(fps)
                          + Fraction(1, 2)))


#: Frame rates StreamTalker accepts anywhere (frames per second): output, scene, captures,
#: metrics (:func:`check_fps`).
MIN_FPS, MAX_FPS = 1.0, 240.0


def check_fps(fps, what: str = "fps") -> float:
    """Validate a frame rate: a finite real number (not a bool) in [:data:`MIN_FPS`,
    :data:`MAX_FPS`]. The one frame-rate rule. Returns it as a float.

    Raises:
        SettingError (a ValueError): naming ``what`` and the range.
    """
    ok = not isinstance(fps, bool) and isinstance(fps, numbers.Real)
    if ok:
        f = float(fps)
        ok = math.isfinite(f) and MIN_FPS <= f <= MAX_FPS
    if not ok:
        raise SettingError(f"{what} must be a number of frames per second in "
                         f"[{MIN_FPS:g}, {MAX_FPS:g}], got {fps!r}")
    return f
