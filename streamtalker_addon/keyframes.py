"""Shape-key keyframe writer: a new action on a mesh's Key datablock, bulk keys.

Works with every Blender the add-on supports (4.5, 5.0, 5.2): the version differences
(slotted actions, ``fcurve_ensure_for_datablock``'s arguments) live in :mod:`.compat`.
Keys are written with ``keyframe_points.add(n)`` + ``foreach_set("co", ...)``, never one
``keyframe_insert`` per key.

Nothing is lost: :class:`ShapeKeyActionWriter` creates a *new* action, keeps the previous
one (fake user, its slot remembered in the new action's custom properties) and restores it
on :meth:`~ShapeKeyActionWriter.abort`; :func:`restore_previous` swaps back later.

Main thread only.
"""

from __future__ import annotations

import bpy
import numpy as np

from . import compat
from .errors import StreamTalkerError

#: Custom properties stored on a generated action.
PROP_PREVIOUS = "streamtalker_previous_action"
PROP_PREVIOUS_SLOT = "streamtalker_previous_slot"
PROP_SOURCE = "streamtalker_source"
GROUP = "StreamTalker"


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
        raise ValueError(f"mesh '{obj.name}' has no shape keys besides its basis to fit")
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
                 min_batch: int = 8, source: str = ""):
        self.key_name = key.name
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

    @property
    def action(self):
        a = bpy.data.actions.get(self.action_name)
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
        """Write what is left; returns the new action (kept with a fake user too)."""
        self.flush()
        action = self.action
        action.use_fake_user = True
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
        action = bpy.data.actions.get(self.action_name) if self.action_name else None
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


def restore_previous(key) -> tuple[str, str]:
    """Swap a generated action on ``key`` back to the action it replaced.

    The generated action stays in the file (fake user). Returns (generated, restored) names.

    Raises:
        ValueError: the current action was not made by StreamTalker, or the previous one
            no longer exists.
    """
    ad = key.animation_data
    cur = ad.action if ad is not None else None
    if cur is None or PROP_PREVIOUS not in cur:
        raise ValueError("the shape keys' current action was not made by StreamTalker; "
                         "nothing to restore")
    prev_name = cur[PROP_PREVIOUS]
    prev = bpy.data.actions.get(prev_name) if prev_name else None
    if prev_name and prev is None:
        raise ValueError(f"the previous action '{prev_name}' no longer exists")
    cur.use_fake_user = True
    _assign(ad, prev, str(cur.get(PROP_PREVIOUS_SLOT, "")))
    key.update_tag()
    return cur.name, prev_name
