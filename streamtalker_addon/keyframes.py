"""Shape-key keyframe writer and the dialogue's NLA: a new action per line on a mesh's Key
datablock, bulk keys, each line an NLA strip at its own frames.

Works with every Blender the add-on supports (4.5, 5.0, 5.2): the version differences
(slotted actions, ``fcurve_ensure_for_datablock``'s arguments, the NLA's default value)
live in :mod:`.compat`. Keys are written with ``keyframe_points.add(n)`` +
``foreach_set("co", ...)``, never one ``keyframe_insert`` per key.

Lines (docs/blender.md): a head speaks many lines (sound strips). While a line is written,
its new action is the shape keys' active action (the keys appear as they come); when it is
finished, :func:`place_line` moves it onto the NLA: one strip per line, named after the
sound strip, on the "StreamTalker" track, covering exactly the frames it is heard, with no
extrapolation, so each line plays at its own frames and nowhere else. Re-generating a line
replaces that line's strip only. Generate, Bake and Live's Record all end here.

Nothing is lost: :class:`ShapeKeyActionWriter` creates a *new* action and restores exactly
what was there on :meth:`~ShapeKeyActionWriter.abort` (it finds its action by a marker, so a
rename meanwhile changes nothing; a file saved meanwhile marks the action as incomplete).
The version of a line it replaces, and the action the shape keys had before their first
line, are kept (fake user) and named in custom properties; the latter keeps playing on a
track under the lines (:func:`_ensure_earlier`); :func:`restore_previous` puts a line's
previous version back.

Main thread only.
"""

from __future__ import annotations

import math

import bpy
import numpy as np

from . import compat
from .errors import SceneError, StreamTalkerError

#: Custom properties stored on a generated action: the action it replaced (for a line: the
#: line's previous version, '' for none) and its slot, what it was made from, the line it is
#: (see :func:`place_line`), the generation writing it (found by it whatever its name), and,
#: only while it is being written, why it is incomplete.
PROP_PREVIOUS = "streamtalker_previous_action"
PROP_PREVIOUS_SLOT = "streamtalker_previous_slot"
PROP_SOURCE = "streamtalker_source"
PROP_LINE = "streamtalker_line"
PROP_JOB = "streamtalker_job"
PROP_PARTIAL = "streamtalker_incomplete"
#: Custom properties on the Key datablock: the action its shape keys had before their first
#: line went onto the NLA (kept, fake user), and its slot.
PROP_REPLACED = "streamtalker_replaced_action"
PROP_REPLACED_SLOT = "streamtalker_replaced_slot"
#: Set on the Key once that earlier action went onto :data:`EARLIER_TRACK`: a track the user
#: then deletes or renames is not put back.
PROP_EARLIER_PLACED = "streamtalker_earlier_placed"
GROUP = "StreamTalker"
#: NLA track names: the lines; the rest pose at the bottom (:func:`_ensure_rest`); between
#: them the action the shape keys had before their first line, still playing
#: (:func:`_ensure_earlier`).
TRACK = "StreamTalker"
REST_TRACK = "StreamTalker Rest"
EARLIER_TRACK = "StreamTalker Earlier"


def shape_key_data_path(key_name: str) -> str:
    """RNA path of a shape key's value on its Key datablock: ``key_blocks["jawOpen"].value``."""
    return f'key_blocks["{bpy.utils.escape_identifier(key_name)}"].value'


def shape_keys_named(name: str):
    """The shape-key datablock ``name`` (looked up by name: Python references do not
    survive undo).

    Raises:
        ReferenceError: it was removed.
    """
    k = bpy.data.shape_keys.get(name)
    if k is None:
        raise ReferenceError(f"shape-key datablock '{name}' is gone")
    return k


def read_rig(obj) -> dict:
    """A mesh's shape-key rig as arrays, for retargeting a vertex model (main thread).

    Returns:
        {"basis": float32 [V, 3] the reference key's coordinates (object space),
         "deltas": float32 [K, V, 3] each other unmuted key minus its relative key (what
         Blender adds per unit of the key's value), "names": [K] shape-key names}.
    Raises:
        ValueError: the mesh has no shape keys besides the basis.
    """
    key = obj.data.shape_keys
    n = len(obj.data.vertices)
    ref = key.reference_key if key is not None else None

    def co(kb) -> np.ndarray:
        a = np.empty(n * 3, np.float32)
        kb.data.foreach_get("co", a)
        return a.reshape(n, 3)

    blocks = [kb for kb in key.key_blocks if kb != ref and not kb.mute] if key else []
    if not blocks:
        raise SceneError(f"mesh '{obj.name}' has no shape keys besides its basis to fit")
    deltas = np.stack([co(kb) - co(kb.relative_key) for kb in blocks])
    return {"basis": co(ref), "deltas": deltas, "names": [kb.name for kb in blocks]}


def fcurve_ensure(action, datablock, data_path: str, group: str = GROUP):
    """The F-curve for ``data_path`` (index 0) of ``datablock`` in ``action``, created if
    needed (:func:`.compat.fcurve_ensure`). ``action`` must already be assigned to
    ``datablock.animation_data``."""
    return compat.fcurve_ensure(action, datablock, data_path, index=0, group=group)


def action_fcurves(action, anim_data=None) -> list:
    """F-curves of ``action`` for the slot assigned in ``anim_data`` (else its first slot);
    [] for None or an empty action (:func:`.compat.action_fcurves`)."""
    return compat.action_fcurves(action, anim_data)


def set_keys(fcurve, frames: np.ndarray, values: np.ndarray) -> None:
    """Make ``fcurve``'s keys exactly (frames[i], values[i]).

    Args:
        fcurve: a bpy FCurve holding no keys, or a prefix of these keys (keys are appended).
        frames: float [n] scene frames, increasing; values: float [n].
    """
    kp = fcurve.keyframe_points
    n = len(frames)
    have = len(kp)
    if n > have:
        kp.add(n - have)
    co = np.empty((n, 2), np.float32)
    co[:, 0] = frames
    co[:, 1] = values
    kp.foreach_set("co", co.ravel())
    fcurve.update()


_slot_identifier = compat.slot_identifier
_assign = compat.assign_action


class ShapeKeyActionWriter:
    """Writes model frames as shape-key keys into a new action, in batches.

    Args:
        key: the mesh's Key datablock (``mesh.shape_keys``).
        action_name: name of the new action (Blender adds ``.001`` if taken).
        targets: [(column, shape_key_name)]: column of the frame array -> shape key.
        first_frame: scene frame of frame 0.
        min_batch: frames buffered before the first write; later writes wait for
            ``max(min_batch, written // 4)`` frames so the total cost stays linear
            (``foreach_set`` rewrites a whole curve).
        source: free text stored on the action (``streamtalker_source``).

    Creating the writer assigns the new, empty action to ``key.animation_data`` (5.x: to a
    new slot) and gives the previous action a fake user.
    """

    def __init__(self, key, action_name: str, targets: list[tuple[int, str]], first_frame: int,
                 min_batch: int = 8, source: str = "", line: str = ""):
        import uuid
        self.key_name = key.name
        self.line = line or action_name
        self.label = action_name
        self.job_id = uuid.uuid4().hex
        self.placement: Placement | None = None
        self.targets = list(targets)
        self.first_frame = int(first_frame)
        self.min_batch = int(min_batch)
        self.columns = np.array([c for c, _ in self.targets], np.int64)
        self.paths = [shape_key_data_path(k) for _, k in self.targets]
        self._chunks: list[np.ndarray] = []
        self._values = np.zeros((0, len(self.targets)), np.float32)
        self.n_written = 0
        self.n_pending = 0
        check_editable(key)
        # what Cancel / a failure puts back exactly: the values the user set, and whether the
        # Key had animation data at all
        self.had_anim_data = key.animation_data is not None
        self.prev_values = {kb.name: float(kb.value) for kb in key.key_blocks}
        ad = key.animation_data
        prev = ad.action if ad is not None else None
        self.prev_name = prev.name if prev is not None else ""
        self.prev_slot = _slot_identifier(ad) if prev is not None else ""
        self.prev_fake_user = bool(prev.use_fake_user) if prev is not None else False
        self.action_name = ""
        self.done = False
        try:
            ad = ad or key.animation_data_create()
            if prev is not None:
                prev.use_fake_user = True
            action = bpy.data.actions.new(action_name)
            self.action_name = action.name
            action[PROP_PREVIOUS] = self.prev_name
            action[PROP_PREVIOUS_SLOT] = self.prev_slot
            action[PROP_SOURCE] = source
            action[PROP_LINE] = self.line
            action[PROP_JOB] = self.job_id
            action[PROP_PARTIAL] = ("being written by StreamTalker: incomplete (the file was "
                                    "saved before the generation ended)")
            _assign(ad, action)
            for p in self.paths:
                fcurve_ensure(action, key, p)
        except BaseException:
            self.abort()  # a failed start leaves nothing behind (no new, empty action)
            raise

    # -- lookups (by name: Python references do not survive undo) -------------------------
    @property
    def key(self):
        return shape_keys_named(self.key_name)

    def _find_action(self):
        """This writer's action, by its name or, when renamed meanwhile, by its marker."""
        a = bpy.data.actions.get(self.action_name) if self.action_name else None
        if a is not None and a.get(PROP_JOB) == self.job_id:
            return a
        for a in bpy.data.actions:
            if a.get(PROP_JOB) == self.job_id:
                self.action_name = a.name
                return a
        return None

    @property
    def action(self):
        a = self._find_action()
        if a is None:
            raise ReferenceError(f"action '{self.action_name}' is gone")
        return a

    @property
    def n_frames(self) -> int:
        return self.n_written + self.n_pending

    def append(self, frames: np.ndarray) -> None:
        """Buffer model frames float32 [n, D] (D = model channels); writes keys when enough
        frames are waiting."""
        if len(frames) == 0:
            return
        self._chunks.append(np.asarray(frames, np.float32)[:, self.columns])
        self.n_pending += len(frames)
        if self.n_pending >= max(self.min_batch, self.n_written // 4):
            self.flush()

    @property
    def names(self) -> list[str]:
        """The shape keys this writer keys, in column order."""
        return [k for _, k in self.targets]

    def values(self) -> np.ndarray:
        """Every frame given so far, written or not: float32 [n_frames, len(names)] (scene
        frames ``first_frame + i``)."""
        return np.concatenate([self._values, *self._chunks]) if self._chunks else self._values

    def flush(self) -> None:
        """Write every buffered frame as keys now."""
        if not self._chunks:
            return
        values = np.concatenate([self._values, *self._chunks])
        key, action = self.key, self.action  # ReferenceError: nothing changes, frames kept
        n = len(values)
        frames = self.first_frame + np.arange(n, dtype=np.float64)
        for j, path in enumerate(self.paths):
            set_keys(fcurve_ensure(action, key, path), frames, values[:, j])
        self._values, self._chunks = values, []
        self.n_written = n
        self.n_pending = 0
        key.update_tag()

    def finish(self):
        """Write what is left and place the line on the NLA (:func:`place_line`; where it
        went: :attr:`placement`); returns the new action (kept with a fake user too).

        Raises:
            ReferenceError: the shape keys or the action were removed; PlanError (a
                StreamTalkerError): the shape keys are in NLA tweak mode. Nothing is placed
                then and :meth:`abort` still puts back what was there.
        """
        self.flush()
        action = self.action
        key = self.key
        if key.animation_data is not None and key.animation_data.use_tweak_mode:
            from .errors import PlanError
            raise PlanError(f"the shape keys '{key.name}' were put in NLA tweak mode while "
                            f"generating; leave it (Tab in the Nonlinear Animation editor) "
                            f"and generate again")
        slot = _slot_identifier(key.animation_data)
        action.use_fake_user = True
        if PROP_PARTIAL in action:
            del action[PROP_PARTIAL]
        self.placement = place_line(key, action, self.label, self.line, self.first_frame,
                                    self.first_frame + max(self.n_written, 1) - 1, slot,
                                    replaced=(self.prev_name, self.prev_slot))
        self.action_name = action.name
        self.done = True
        return action

    def abort(self) -> None:
        """Put back exactly what was there: remove the partial action, assign the previous
        action (and slot), restore the shape-key values the user had set, and remove the
        animation data this writer created (when nothing else uses it)."""
        self._chunks = []
        try:
            key = self.key
        except ReferenceError:
            key = None
        action = self._find_action()
        prev = bpy.data.actions.get(self.prev_name) if self.prev_name else None
        if key is not None:
            ad = key.animation_data
            if ad is not None and (ad.action is None or ad.action == action):
                _assign(ad, prev, self.prev_slot)
            if (not self.had_anim_data and ad is not None and ad.action is None
                    and not len(ad.drivers) and not len(ad.nla_tracks)):
                key.animation_data_clear()
            for kb in key.key_blocks:
                if kb.name in self.prev_values:
                    kb.value = self.prev_values[kb.name]
            key.update_tag()
        if action is not None:
            bpy.data.actions.remove(action)
        if prev is not None:
            prev.use_fake_user = self.prev_fake_user
        self.done = True


class NotEditable(StreamTalkerError, ValueError):
    """The shape keys cannot be animated in this file (linked from a library)."""


def check_editable(key, obj_name: str = "") -> None:
    """Refuse shape keys whose new action would not be saved with this file.

    A Key linked from a library (the head appended by link, or an object-only library
    override whose mesh data is still linked) is not editable: an action assigned to it is
    dropped on save. A library override of the mesh data (hence its Key) is fine.

    Raises:
        NotEditable: the sentence says why and how to fix it.
    """
    who = f"'{obj_name}'" if obj_name else f"the shape keys '{key.name}'"
    lib = key.library
    if lib is not None or not key.is_editable:
        where = f" from the library '{lib.filepath}'" if lib is not None else ""
        raise NotEditable(
            f"{who} uses shape keys linked{where}, which cannot be animated in this file: make "
            f"them local (Object > Relations > Make Local > Selected Objects and Data) or use a "
            f"library override of the mesh data (Object > Library Override > Make, then make "
            f"the mesh editable)")


class Placement:
    """Where :func:`place_line` put a line: NLA ``track`` and ``strip`` names, the scene
    frames ``first``..``last`` it covers, the ``action`` it plays, and the ``replaced``
    version of the line ('' when it is new)."""

    def __init__(self, track: str, strip: str, first: int, last: int, action: str,
                 replaced: str = ""):
        self.track, self.strip, self.first, self.last = track, strip, first, last
        self.action, self.replaced = action, replaced

    def sentence(self) -> str:
        """"NLA track 'StreamTalker', strip 'hello', frames 10-99, action 'hello'"."""
        return (f"NLA track '{self.track}', strip '{self.strip}', frames {self.first}-"
                f"{self.last}, action '{self.action}'")


def _is_line_track(track) -> bool:
    return track.name == TRACK or (track.name.startswith(TRACK + " ") and
                                   track.name != REST_TRACK and not _is_earlier_track(track))


def _is_earlier_track(track) -> bool:
    """:data:`EARLIER_TRACK`, or "StreamTalker Earlier 2" ... (actions put aside later)."""
    return track.name == EARLIER_TRACK or track.name.startswith(EARLIER_TRACK + " ")


def line_strips(key, line: str | None = None) -> list:
    """[(track, strip)] of the lines on ``key``'s NLA (strips whose action is a line: has
    :data:`PROP_LINE`), or of the one line ``line``."""
    ad = key.animation_data
    out = []
    for tr in (ad.nla_tracks if ad is not None else ()):
        for st in tr.strips:
            a = st.action
            if a is not None and PROP_LINE in a and (line is None or a[PROP_LINE] == line):
                out.append((tr, st))
    return out


def _fcurve_paths(action, anim_data=None) -> list[str]:
    return [fc.data_path for fc in compat.action_fcurves(action, anim_data)]


def _ensure_rest(key, ad, paths: list[str]):
    """The rest track: one action holding every shape key a line animates at 0 (the basis)
    everywhere (one key, held), on :data:`REST_TRACK` under the line tracks (and under the
    earlier action's track, :func:`_ensure_earlier`), so
    between lines the head rests, on every Blender (where no strip plays, the NLA would give
    a keyed shape key its RNA default: 1.0 on 5.0; elsewhere
    whatever tracks lie underneath). Mute it to let those show through. Returns the
    track."""
    track = ad.nla_tracks.get(REST_TRACK)
    st = track.strips[0] if track is not None and len(track.strips) else None
    action = st.action if st is not None else None
    if action is None:
        action = bpy.data.actions.new(REST_TRACK)
        action[PROP_SOURCE] = "the rest pose between lines (StreamTalker)"
        action.use_fake_user = True
    saved = (ad.action, _slot_identifier(ad))
    _assign(ad, action)
    slot = _slot_identifier(ad)
    have = set(_fcurve_paths(action, ad))
    first = int(bpy.context.scene.frame_start) if bpy.context.scene else 1
    for p in paths:
        if p not in have:
            set_keys(fcurve_ensure(action, key, p), np.array([first], np.float64),
                     np.zeros(1, np.float32))
    _assign(ad, saved[0], saved[1])
    if track is None:
        track = ad.nla_tracks.new()          # on top: the earlier and line tracks go back above
        track.name = REST_TRACK
        for tr in [t for t in ad.nla_tracks if _is_earlier_track(t)]:
            _recreate_on_top(ad, tr)
        for tr in [t for t in ad.nla_tracks if _is_line_track(t)]:
            _recreate_on_top(ad, tr)
    if st is None:
        st = track.strips.new(REST_TRACK, int(action.frame_range[0]), action)
        compat.set_strip_slot(st, slot)
        st.extrapolation = "HOLD"
        st.blend_type = "REPLACE"
    return track


def _recreate_on_top(ad, track) -> None:
    """Move a StreamTalker track (lines, or the earlier action) to the top of the NLA stack
    (the API cannot reorder tracks: a copy is made on top, with the same strips and the
    track's mute, and the old one removed)."""
    new = ad.nla_tracks.new()
    name, muted = track.name, track.mute
    keep = [(st.name, st.action, compat.slot_identifier(st), st.frame_start, st.mute,
             st.influence, st.extrapolation, st.action_frame_start, st.action_frame_end)
            for st in track.strips if st.action is not None]
    ad.nla_tracks.remove(track)
    new.name, new.mute = name, muted
    for sname, action, slot, start, mute, influence, extrapolation, a0, a1 in keep:
        st = new.strips.new(sname, math.floor(start), action)
        if slot:
            compat.set_strip_slot(st, slot)
        st.action_frame_start, st.action_frame_end = a0, a1
        st.frame_start_ui = start
        st.blend_type, st.extrapolation, st.mute = "REPLACE", extrapolation, mute
        st.influence = influence


def _ensure_earlier(key, ad, rest):
    """The earlier track: the action the shape keys had before their first line
    (``key[PROP_REPLACED]``), as one strip on :data:`EARLIER_TRACK`, right above the rest
    track and under the lines, blend Replace, playing the action at the very frames it
    played at as the active action: the strip spans the action's frames and the scene's
    (so F-curve extrapolation and Cycles modifiers go on as before), held beyond. What the
    animator had keyed keeps playing: between lines on every channel it animates, and during
    a line on the channels the line does not key. Mute the track to see the rest pose
    between lines instead (a shape key only it animates then keeps its slider value).

    Not placed for an action StreamTalker made (an old lip-sync take from before lines were
    on the NLA: it stays kept and named only), nor again once placed
    (:data:`PROP_EARLIER_PLACED`: a track the user deleted or renamed stays so). Returns the
    track, or None."""
    track = ad.nla_tracks.get(EARLIER_TRACK)
    if track is not None:
        return track
    earlier = bpy.data.actions.get(str(key.get(PROP_REPLACED, "")))
    if earlier is None or PROP_SOURCE in earlier or key.get(PROP_EARLIER_PLACED):
        return None
    track = ad.nla_tracks.new(prev=rest)
    track.name = EARLIER_TRACK
    _playing_strip(track, EARLIER_TRACK, earlier, str(key.get(PROP_REPLACED_SLOT, "")))
    key[PROP_EARLIER_PLACED] = True
    return track


def _playing_strip(track, name: str, action, slot: str):
    """A strip on ``track`` that plays ``action`` as the active action did: action frame f
    at scene frame f, over the action's frames and the scene's (F-curve modifiers and
    extrapolation included), held beyond; blend Replace."""
    scene = bpy.context.scene
    lo, hi = (float(f) for f in action.frame_range)
    if scene is not None:
        lo, hi = min(lo, float(scene.frame_start)), max(hi, float(scene.frame_end))
    st = track.strips.new(name, math.floor(lo), action)
    st.action_frame_start, st.action_frame_end = lo, max(hi, lo + 1.0)
    st.frame_start_ui = lo      # moves the whole strip
    if slot:
        compat.set_strip_slot(st, slot)
    st.blend_type = "REPLACE"
    st.extrapolation = "HOLD"
    return st


def _push_down(ad, action, slot: str, below):
    """An action put aside after the first (keys added once lines existed make a new active
    action, which would play over every line): onto a track of its own,
    "StreamTalker Earlier 2" ..., above the other earlier tracks and under the lines, as
    Blender's Push Down would, so it keeps playing too (once: an action already on such a
    track is not pushed again). Returns the track."""
    earlier = [t for t in ad.nla_tracks if _is_earlier_track(t)]
    for t in earlier:
        if any(st.action == action for st in t.strips):
            return t
    track = ad.nla_tracks.new(prev=earlier[-1] if earlier else below)
    track.name = f"{EARLIER_TRACK} {len(earlier) + 1}"
    _playing_strip(track, action.name, action, slot)
    return track


def place_line(key, action, name: str, line: str, first: int, last: int,
               slot_identifier: str = "", replaced: tuple[str, str] = ("", "")) -> Placement:
    """Put ``action`` (keys on scene frames ``first``..``last``) on ``key``'s NLA as the line
    ``line``: an NLA strip named ``name`` on the first "StreamTalker" track where it fits
    (another above when lines overlap), blend Replace, extrapolation Nothing -- it plays at
    those frames and nowhere else (under the lines, the action the shape keys had before
    their first line keeps playing, :func:`_ensure_earlier`, and a rest track holds the rest
    pose wherever nothing else plays, :func:`_ensure_rest`). On 4.4+ the strip's
    ``action_slot`` is ``slot_identifier``.

    The line's previous strip (an action with the same :data:`PROP_LINE`) is removed and
    its action kept (fake user), named in ``action[PROP_PREVIOUS]``. The active action is
    cleared (it would play over every line); ``replaced`` (name, slot) is the action the
    shape keys had before this one was assigned: when it is not a line, it is kept (fake
    user) and named in ``key[PROP_REPLACED]`` (it then plays on :data:`EARLIER_TRACK`,
    :func:`_ensure_earlier`) unless an earlier one is named there; then it is pushed onto a
    track of its own under the lines (:func:`_push_down`).

    Returns:
        the :class:`Placement`.
    """
    ad = key.animation_data or key.animation_data_create()
    last = max(int(last), int(first))
    prev_name, prev_slot = replaced
    prev = bpy.data.actions.get(prev_name) if prev_name else None
    pushed = None
    if prev is not None and prev != action and PROP_LINE not in prev:
        prev.use_fake_user = True
        if not key.get(PROP_REPLACED):
            key[PROP_REPLACED] = prev.name
            key[PROP_REPLACED_SLOT] = prev_slot
        elif key[PROP_REPLACED] != prev.name and PROP_SOURCE not in prev:
            pushed = prev
    paths = _fcurve_paths(action, ad if ad.action == action else None)
    _assign(ad, None)
    old_version, old_slot = None, ""
    for tr, st in line_strips(key, line):
        if st.action != action:
            old_version, old_slot = st.action, compat.slot_identifier(st)
            old_version.use_fake_user = True
            tr.strips.remove(st)
    action[PROP_PREVIOUS] = old_version.name if old_version is not None else ""
    action[PROP_PREVIOUS_SLOT] = old_slot
    rest = _ensure_rest(key, ad, paths)
    _ensure_earlier(key, ad, rest)
    if pushed is not None:
        _push_down(ad, pushed, prev_slot, rest)
    below = ([t for t in ad.nla_tracks if _is_earlier_track(t)] or [rest])[-1]
    tracks = [t for t in ad.nla_tracks if _is_line_track(t)]
    end = last + 1 if last == first else last     # a one-frame action spans [f, f+1]
    strip = None
    for tr in tracks:
        if any(st.frame_start < end and first < st.frame_end for st in tr.strips):
            continue
        try:
            strip = tr.strips.new(name, int(first), action)
            break
        except RuntimeError:    # no room after all
            continue
    if strip is None:
        tr = ad.nla_tracks.new(prev=(tracks[-1] if tracks else below))
        tr.name = TRACK if not tracks else f"{TRACK} {len(tracks) + 1}"
        strip = tr.strips.new(name, int(first), action)
    if slot_identifier:
        compat.set_strip_slot(strip, slot_identifier)
    strip.blend_type = "REPLACE"
    strip.extrapolation = "NOTHING"
    strip.use_sync_length = False
    key.update_tag()
    return Placement(tr.name, strip.name, int(first), last, action.name,
                     old_version.name if old_version is not None else "")


def restore_previous(key, line: str | None = None) -> tuple[str, str]:
    """Put back what a generation replaced; the generated action stays in the file (fake
    user). Returns (generated, restored) action names ('' restored: none).

    With ``line``: that line's previous version goes back onto the NLA in its place (a
    second call goes one more version back); a line that has none is taken off the NLA, and
    when it was the last line, the action the shape keys had before their first line is
    assigned again and its track removed (when another action was assigned meanwhile, it
    stays on its track instead). Every version stays in the file.
    Without: the shape keys' active action, when StreamTalker made it (a file from before
    lines were on the NLA), is swapped for the action it replaced.

    Raises:
        ValueError: no such line / the active action was not made by StreamTalker, or the
            previous action no longer exists.
    """
    ad = key.animation_data
    if line is not None:
        found = line_strips(key, line)
        if not found:
            raise SceneError(f"no line '{line}' on the NLA of the shape keys '{key.name}'; "
                             f"nothing to restore")
        tr, st = found[0]
        cur = st.action
        prev_name = str(cur.get(PROP_PREVIOUS, ""))
        prev = bpy.data.actions.get(prev_name) if prev_name else None
        if prev_name and prev is None:
            raise SceneError(f"the previous version '{prev_name}' of line '{line}' no longer "
                             f"exists")
        cur.use_fake_user = True
        if prev is not None:     # one step back along the versions: its own previous stays
            lo, hi = (int(round(f)) for f in prev.frame_range)
            older = (prev.get(PROP_PREVIOUS, ""), prev.get(PROP_PREVIOUS_SLOT, ""))
            place_line(key, prev, st.name, line, lo, hi, str(cur.get(PROP_PREVIOUS_SLOT, "")))
            prev[PROP_PREVIOUS], prev[PROP_PREVIOUS_SLOT] = older
            key.update_tag()
            return cur.name, prev.name
        tr.strips.remove(st)
        restored = ""
        if not line_strips(key):
            for t in [t for t in ad.nla_tracks if _is_line_track(t) or t.name == REST_TRACK]:
                if not any(s.action is not None and PROP_LINE in s.action for s in t.strips):
                    ad.nla_tracks.remove(t)
            replaced = bpy.data.actions.get(str(key.get(PROP_REPLACED, "")))
            # the earlier action becomes the active one again -- unless the user assigned
            # another meanwhile: then it keeps playing on its track, still named on the Key
            if replaced is None or ad.action is None:
                earlier = ad.nla_tracks.get(EARLIER_TRACK)
                if earlier is not None and all(s.action == replaced for s in earlier.strips):
                    ad.nla_tracks.remove(earlier)
                if replaced is not None:
                    _assign(ad, replaced, str(key.get(PROP_REPLACED_SLOT, "")))
                    restored = replaced.name
                for p in (PROP_REPLACED, PROP_REPLACED_SLOT, PROP_EARLIER_PLACED):
                    if p in key:
                        del key[p]
        key.update_tag()
        return cur.name, restored
    cur = ad.action if ad is not None else None
    if cur is None or PROP_PREVIOUS not in cur:
        raise SceneError("the shape keys' current action was not made by StreamTalker; "
                         "nothing to restore")
    prev_name = cur[PROP_PREVIOUS]
    prev = bpy.data.actions.get(prev_name) if prev_name else None
    if prev_name and prev is None:
        raise SceneError(f"the previous action '{prev_name}' no longer exists")
    cur.use_fake_user = True
    _assign(ad, prev, str(cur.get(PROP_PREVIOUS_SLOT, "")))
    key.update_tag()
    return cur.name, prev_name
