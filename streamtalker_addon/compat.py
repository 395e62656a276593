"""Every difference between the Blender versions the add-on supports, in one place.

Supported and tested (the PyPI ``bpy`` wheels, ``tools/test.sh``): **4.5 LTS, 5.0 and 5.2
LTS** (``blender_manifest.toml``: ``blender_version_min = "4.5.0"``). The rest of the add-on
calls these functions instead of probing ``bpy`` itself.

What differs (docs/architecture.md, "Blender facts"):

* F-curves: all three have slotted actions (``action.layers[0].strips[0].channelbag(slot)
  .fcurves``, read through ``bpy_extras.anim_utils``); 5.0 removed the legacy
  ``Action.fcurves``. ``Action.fcurve_ensure_for_datablock`` takes ``group_name`` on 5.0+,
  not on 4.5 (passing it raises TypeError there): the group is set afterwards.
* Strip timing: 5.2 renames ``frame_start`` / ``frame_final_start`` / ``frame_final_end`` to
  ``content_start`` / ``left_handle`` / ``right_handle`` (the old names warn, gone in 6.0).
* Registered properties: on 4.x a registered ``PointerProperty`` is stored as an ID property,
  so ``strip.get("streamtalker_target")`` returns an ``IDPropertyGroup`` (not an Object);
  on 5.0+ registered properties are kept apart from user ID properties and ``get`` is None.
* Exit: the ``bpy`` 4.5 module can hang for good when the Python process exits (a static
  destructor waits on the audio device's delayed-close thread); 5.0+ exit cleanly. Scripts
  that run the ``bpy`` module end with :func:`exit_process`.
* ``aud`` (Audaspace): missing from some builds (the PyPI ``bpy`` 4.2 wheel); audio is then
  decoded with soundfile. Import it after ``bpy``.
* NLA: where no strip of a track plays, the NLA sets every channel it animates to the RNA
  default of the property -- and ``ShapeKey.value`` defaults to 1.0 on 5.0 (0.0 on 4.5 and
  5.2), so a head between two lines would show every shape key at full. Lines get a rest
  track under them (on every version, so they
  behave the same everywhere).
* Sequencer operators (retiming keys, meta strips, used by the tests): 5.0+ look for the
  sequencer's scene in the context (``temp_override(sequencer_scene=scene)``,
  :func:`sequencer_context`); ``RetimingKeys.add`` crashes 4.5 and 5.0 on a strip that has
  no retiming data yet (fine on 5.2). Retiming keys expose only their scene frame, not the
  source position they hold, so a retimed strip's audio is rendered by Blender's own
  mixdown (:mod:`.audio_source`).

Not supported, so not handled: 4.2-4.4 (4.2's wheel cannot make sound strips at all, no
``aud``; ``SoundStrip.sound_offset`` appeared in 4.3; ``strips`` / ``Strip`` replaced
``sequences`` / ``Sequence`` in 4.4). Blender refuses to install the extension there.

Only names from ``bpy`` are touched; importing this module imports ``bpy``.
"""

from __future__ import annotations

import bpy

#: (major, minor) of the running Blender.
VERSION: tuple[int, int] = tuple(bpy.app.version[:2])
#: The oldest Blender the add-on supports (the manifest's ``blender_version_min``).
MIN_VERSION: tuple[int, int] = (4, 5)


# -- F-curves and actions -------------------------------------------------------------------

#: ``Action.fcurve_ensure_for_datablock`` takes ``group_name`` (5.0+; not 4.5).
ENSURE_TAKES_GROUP = "group_name" in {
    p.identifier
    for p in bpy.types.Action.bl_rna.functions["fcurve_ensure_for_datablock"].parameters}


def fcurve_ensure(action, datablock, data_path: str, index: int = 0, group: str = ""):
    """The F-curve for ``data_path[index]`` of ``datablock`` in ``action`` (created if
    needed), in the channel group ``group`` when given. ``action`` must already be assigned
    to ``datablock.animation_data`` (its slot is the one used)."""
    if ENSURE_TAKES_GROUP:  # 5.0+
        return action.fcurve_ensure_for_datablock(datablock, data_path, index=index,
                                                  group_name=group)
    fc = action.fcurve_ensure_for_datablock(datablock, data_path, index=index)  # 4.5
    if group and fc.group is None:
        cb = channelbag(action, datablock.animation_data)
        fc.group = cb.groups.get(group) or cb.groups.new(group)
    return fc


def channelbag(action, anim_data=None):
    """The channelbag of ``action`` for the slot assigned in ``anim_data`` (else the first
    slot), or None (an empty action: no slot or no layer yet)."""
    if action is None or not len(action.slots) or not len(action.layers):
        return None
    slot = anim_data.action_slot if anim_data is not None else None
    if slot is None:
        slot = action.slots[0]
    from bpy_extras import anim_utils
    return anim_utils.action_get_channelbag_for_slot(action, slot)


def action_fcurves(action, anim_data=None) -> list:
    """F-curves of ``action`` for the slot assigned in ``anim_data`` (or its first slot);
    [] for None or an empty action."""
    cb = channelbag(action, anim_data)
    return list(cb.fcurves) if cb is not None else []


def slot_identifier(anim_data) -> str:
    """Identifier of the action slot assigned in ``anim_data`` or played by an NLA strip
    ('' when none)."""
    slot = anim_data.action_slot if anim_data is not None else None
    return slot.identifier if slot is not None else ""


def assign_action(anim_data, action, slot_identifier_: str = "") -> None:
    """Assign ``action`` (or None) to ``anim_data``, then the slot named
    ``slot_identifier_`` when the action has it."""
    anim_data.action = action
    if action is None or not slot_identifier_:
        return
    slot = find_slot(action, slot_identifier_)
    if slot is not None:
        try:
            anim_data.action_slot = slot
        except (TypeError, RuntimeError, AttributeError):
            pass


def find_slot(action, identifier: str):
    """The slot of ``action`` named ``identifier``, or None."""
    return next((s for s in action.slots if s.identifier == identifier), None)


# -- Sequencer ------------------------------------------------------------------------------

def strip_type():
    """The RNA type of sequencer strips (``Strip`` on every supported Blender)."""
    return bpy.types.Strip


def all_strips(scene) -> list:
    """Every strip of ``scene`` (inside meta strips too); [] without a sequence editor."""
    ed = scene.sequence_editor
    return list(ed.strips_all) if ed is not None else []


#: Name of the sequence editor's all-strips collection (for UI searches).
ALL_STRIPS = "strips_all"


def strip_frames(strip) -> tuple[float, int, int]:
    """(content start, first audible frame, end frame) of a strip: the scene frame where its
    source starts, and ``first <= f < end`` the frames it plays (trims applied). 5.2 names
    them ``content_start`` / ``left_handle`` / ``right_handle`` (``frame_start`` /
    ``frame_final_start`` / ``frame_final_end`` are deprecated there, gone in 6.0)."""
    props = strip.bl_rna.properties
    if "left_handle" in props:
        return float(strip.content_start), int(strip.left_handle), int(strip.right_handle)
    return float(strip.frame_start), int(strip.frame_final_start), int(strip.frame_final_end)


def strip_target(strip):
    """The Object in ``strip.streamtalker_target`` (registered by :mod:`.properties`), or
    None. Never ``strip.get("streamtalker_target")``: on 4.x that is the property's storage,
    an ``IDPropertyGroup``, even when no target is set."""
    return strip.streamtalker_target


# -- Process exit ---------------------------------------------------------------------------

#: The ``bpy`` module may deadlock at interpreter exit (4.5: ``~GlobalState`` waits on the
#: audio delayed-close thread's condition variable).
EXIT_MAY_HANG = VERSION < (5, 0)


def exit_process(status: int) -> None:
    """End a process that imported the ``bpy`` module with ``status``: flush the standard
    streams and ``os._exit``, skipping the C++ static destructors, which can hang (4.5:
    ``EXIT_MAY_HANG``) or abort with "terminate called without an active exception" (5.0 and
    5.2 after a Ctrl+C) -- and removing Blender's session temporary folder, which its skipped
    exit would have removed. Call it only when everything is saved, from ``__main__`` of
    scripts run with the ``bpy`` module, never inside Blender."""
    import os
    import sys
    remove_session_tempdir()
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except (OSError, ValueError):
            pass
    os._exit(int(status))


def remove_session_tempdir() -> None:
    """Remove Blender's session folder ``blender_XXXXXX`` in the temporary folder
    (``bpy.app.tempdir``), which Blender removes at its own exit only: a process ended with
    :func:`exit_process` would leave one behind each time. Only a folder of that name."""
    import os
    import shutil
    try:
        d = bpy.app.tempdir
    except Exception:   # noqa: BLE001
        return
    if d and os.path.basename(os.path.normpath(d)).startswith("blender_") and os.path.isdir(d):
        shutil.rmtree(d, ignore_errors=True)


# -- Audio ----------------------------------------------------------------------------------

def aud_module():
    """Blender's ``aud`` (Audaspace) module, or None in builds without it (the PyPI ``bpy``
    4.2 wheel); the caller then decodes with soundfile."""
    try:
        import aud
    except ImportError:
        return None
    return aud


def audio_decoder(path: str) -> str:
    """Which decoder reads an audio file for the model: ``"soundfile"`` (through
    ``model_core.io.audio``) when libsndfile reads it -- the decoder the command line uses,
    so a strip and the same file on the command line get the same samples, bit for bit
    (Blender's ``aud`` scales 16-bit PCM by 1/32767 where libsndfile scales by 1/32768, a
    3e-5 gain that moves frames by ~1e-5) -- else ``"aud"`` where this build has Audaspace
    (formats only Blender's own ffmpeg reads), else ``"soundfile"`` (model_core then tries an
    ffmpeg binary and says what is missing)."""
    try:
        import soundfile
        soundfile.info(path)
        return "soundfile"
    except Exception:   # not installed, or a format libsndfile does not read
        pass
    return "aud" if aud_module() is not None else "soundfile"


# -- NLA ------------------------------------------------------------------------------------

def set_strip_slot(nla_strip, slot_identifier: str) -> None:
    """Make an NLA strip play its action's slot ``slot_identifier`` (slotted actions: 4.4+;
    ``strips.new`` picks the first suitable slot, this makes the choice explicit)."""
    slot = find_slot(nla_strip.action, slot_identifier)
    if slot is not None:
        nla_strip.action_slot = slot


# -- Sequencer: how Blender plays a strip -----------------------------------------------------

def parent_metas(strip) -> list:
    """The meta strips ``strip`` is nested in, innermost first ([] at the top level)."""
    out = []
    meta = strip.parent_meta()
    while meta is not None:
        out.append(meta)
        meta = meta.parent_meta()
    return out


def channel_muted(scene, strip) -> bool:
    """Whether the channel ``strip`` sits on is muted (the sequencer's channel header, or
    the enclosing meta strip's own channels)."""
    metas = parent_metas(strip)
    owner = metas[0] if metas else scene.sequence_editor
    channels = getattr(owner, "channels", None)
    try:
        return bool(channels[strip.channel].mute) if channels is not None else False
    except (IndexError, KeyError, TypeError):
        return False


def retiming_frames(strip) -> list[int]:
    """Scene frames of a strip's retiming keys ([] when it is not retimed)."""
    keys = getattr(strip, "retiming_keys", None)
    return [int(k.timeline_frame) for k in keys] if keys is not None else []


def sequencer_context(scene):
    """A context in which sequencer operators act on ``scene`` (5.0+: the sequencer scene is
    the workspace's, not the window's)."""
    if VERSION >= (5, 0):
        return bpy.context.temp_override(sequencer_scene=scene, scene=scene)
    return bpy.context.temp_override(scene=scene)
