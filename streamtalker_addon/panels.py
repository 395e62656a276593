"""The StreamTalker tab: View3D > Sidebar > StreamTalker (Source, Target, Model, Generate)."""

from __future__ import annotations

import bpy
from bpy.types import Panel, UIList

from . import audio_source, compat, core, jobs, keyframes
from . import mapping as mapping_mod
from .live import expected_latency, input_device
from .preferences import get_prefs


class STREAMTALKER_UL_mapping(UIList):
    """Rows: model channel -> shape key (searchable among the mesh's keys)."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0):
        obj = context.view_layer.objects.active
        row = layout.row(align=True)
        row.label(text=item.channel, icon="CHECKMARK" if item.shape_key else "ERROR")
        key = obj.data.shape_keys if obj is not None and obj.type == "MESH" else None
        if key is not None:
            row.prop_search(item, "shape_key", key, "key_blocks", text="")
        else:
            row.prop(item, "shape_key", text="")


#: The status line's icon after a generation ended.
_ENDED = {"failed": "ERROR", "finished": "CHECKMARK", "cancelled": "CANCEL"}


class _Base:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "StreamTalker"


class STREAMTALKER_PT_main(_Base, Panel):
    bl_label = "StreamTalker"

    def draw(self, context):
        layout, job = self.layout, jobs.last_job("generate")
        if job is None or not job.running:
            row = layout.row(align=True)
            row.operator("streamtalker.generate", icon="PLAY_SOUND")
            row.operator("streamtalker.generate_all", icon="SEQ_STRIP_DUPLICATE")
            if job is not None and job.state in _ENDED:
                layout.label(text=job.summary, icon=_ENDED[job.state])
                for n in job.notes:
                    layout.label(text=n, icon="INFO")
            return
        row = layout.row(align=True)
        row.progress(factor=job.progress, text=f"Generating {int(job.progress * 100)}%")
        row.operator("streamtalker.cancel", text="", icon="CANCEL")


class STREAMTALKER_PT_source(_Base, Panel):
    bl_label = "Source"
    bl_parent_id = "STREAMTALKER_PT_main"

    def draw(self, context):
        layout = self.layout
        scene = context.scene
        s = scene.streamtalker
        layout.prop(s, "source", expand=True)
        if s.source == "STRIP":
            ed = scene.sequence_editor
            coll = compat.ALL_STRIPS
            if ed is not None:
                layout.prop_search(s, "strip", ed, coll, text="Strip", icon="SOUND")
            strips = audio_source.sound_strips(scene)
            if not strips:
                layout.label(text="No sound strip in this scene", icon="INFO")
            strip = audio_source.find_strip(scene, s.strip) if s.strip else (
                strips[0] if len(strips) == 1 else None)
            if strip is not None:
                _, first, end = compat.strip_frames(strip)
                layout.label(text=f"Frames {first}-{end - 1}"
                                  f" at {audio_source.scene_fps(scene):.3f} fps")
                layout.prop(strip, "streamtalker_target", text="Bake Target")
        else:
            layout.prop(s, "filepath", text="")


class STREAMTALKER_PT_target(_Base, Panel):
    bl_label = "Target"
    bl_parent_id = "STREAMTALKER_PT_main"

    def draw(self, context):
        layout = self.layout
        obj = context.view_layer.objects.active
        if obj is None or obj.type != "MESH":
            layout.label(text="Select the head mesh", icon="INFO")
            return
        layout.label(text=obj.name, icon="MESH_DATA")
        if obj.data.shape_keys is None:
            layout.label(text="This mesh has no shape keys", icon="ERROR")
            return
        st = obj.streamtalker
        layout.prop(st, "rig")
        for text, icon in _rig_lines(obj):
            layout.label(text=text, icon=icon)
        row = layout.row(align=True)
        row.operator("streamtalker.mapping_auto", icon="LINKED")
        row.operator("streamtalker.mapping_load", text="", icon="FILEBROWSER")
        row.operator("streamtalker.mapping_save", text="", icon="FILE_TICK")
        if len(st.mapping):
            n = sum(1 for it in st.mapping if it.shape_key)
            layout.label(text=f"{n} of {len(st.mapping)} channels mapped")
            layout.template_list("STREAMTALKER_UL_mapping", "", st, "mapping", st, "mapping_index",
                                 rows=6)
        key = obj.data.shape_keys
        ad = key.animation_data
        lines = keyframes.line_strips(key)
        if lines:
            tracks = sorted({tr.name for tr, _ in lines})
            layout.label(text=f"{len(lines)} line(s) on NLA track {', '.join(tracks)}",
                         icon="NLA")
        if ad is not None and ad.action is not None:
            layout.label(text=f"Action: {ad.action.name}", icon="ACTION")
            if keyframes.PROP_PARTIAL in ad.action:
                layout.label(text="Being generated: incomplete", icon="TIME")
        if lines or (ad is not None and ad.action is not None
                     and keyframes.PROP_PREVIOUS in ad.action):
            layout.operator("streamtalker.restore_previous", icon="LOOP_BACK")


def _rig_lines(obj) -> list[tuple[str, str]]:
    """(text, icon) lines under the Rig menu: the kind (detected or chosen) and how many of
    its mouth shapes the mesh's keys match; a warning when the mapping list is of another
    kind. Drawing never fails."""
    from .properties import mapping_rig, object_rig, shape_key_names
    try:
        rig, detected = object_rig(obj)
        keys = shape_key_names(obj)
        found = mapping_mod.match_channels(mapping_mod.rig_channels(rig), keys, rig)
        lacking, n_shapes = mapping_mod.mouth_shapes_missing(rig, found)
        lines = [(f"{'Detected: ' if detected else ''}{mapping_mod.rig_label(rig)}, "
                  f"{n_shapes - len(lacking)} of {n_shapes} mouth shapes match",
                  "SHAPEKEY_DATA")]
        if len(obj.streamtalker.mapping) and mapping_rig(obj) != rig:
            lines.append((f"The list maps {mapping_mod.rig_label(mapping_rig(obj))}: "
                          f"press Auto-Match", "ERROR"))
        return lines
    except Exception:   # noqa: BLE001  (drawing never fails)
        return []


def _vertex_model_size(checkpoint: str) -> int | None:
    """Vertices of the chosen vertex checkpoint, None for other kinds or unreadable paths
    (:func:`.core.describe`: the JSON only, read once per path and modification time, no
    torch import; drawing never fails)."""
    if not checkpoint:
        return None
    try:
        info = core.describe(bpy.path.abspath(checkpoint))
    except Exception:   # noqa: BLE001  (drawing never fails)
        return None
    return info.n_vertices if info.kind == "vertex" else None


class STREAMTALKER_PT_model(_Base, Panel):
    bl_label = "Model"
    bl_parent_id = "STREAMTALKER_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        s = context.scene.streamtalker
        layout.prop(s, "model_source", text="")
        n = None
        if s.model_source == "FILE":
            layout.prop(s, "checkpoint", text="")
            n = _vertex_model_size(s.checkpoint)
            if n:
                layout.label(text=f"Vertex model ({n} vertices): fitted onto the shape keys",
                             icon="MOD_MESHDEFORM")
        col = layout.column(align=True)
        col.prop(s, "device")
        col.prop(s, "steps")
        col.prop(s, "seed")
        col.prop(s, "style")
        col = layout.column(align=True)
        col.enabled = not n       # region strengths scale ARKit channels only
        col.label(text="Strength (ARKit models only)" if n else "Strength")
        for region in mapping_mod.strength_regions():
            col.prop(s, f"strength_{region}", slider=True)
        row = layout.row()
        row.enabled = not n       # a vertex model has no blink channels
        row.prop(s, "blink_rate", slider=True)


class STREAMTALKER_PT_live(_Base, Panel):
    bl_label = "Live"
    bl_parent_id = "STREAMTALKER_PT_main"

    def draw(self, context):
        layout = self.layout
        sess = jobs.last_job("live")
        if sess is not None and sess.running:
            row = layout.row(align=True)
            row.operator("streamtalker.live_stop", icon="PAUSE")
            row.operator("streamtalker.live_record", depress=sess.recording,
                         text="Recording" if sess.recording else "Record", icon="REC")
            st = sess.engine.stats
            lvl = max(0.0, min(1.0, (st.level_db + 60.0) / 60.0))
            layout.progress(factor=lvl, type="BAR", text=f"Input {st.level_db:.0f} dB")
            col = layout.column(align=True)
            col.label(text=f"Latency {st.latency_ms:.0f} ms "
                           f"(+ up to {sess.engine.latency_ms:.0f} ms chunk and look-ahead)")
            rs = sess.engine.session_settings
            if rs is not None:
                col.label(text=f"{rs.chunk_frames}-frame chunks, {rs.lookahead_ms:g} ms "
                               f"look-ahead ({'low latency' if rs.preset == 'live' else 'best quality'})")
            col.label(text=f"Dropped audio {st.dropped_s:.2f} s")
            col.label(text=f"Device: {sess.engine.device_name}", icon="OUTLINER_DATA_SPEAKER")
        else:
            layout.operator("streamtalker.live_start", icon="REC")
            _draw_expected_latency(layout, context)
            dev = input_device(context)
            layout.prop(context.window_manager.streamtalker_live, "device")
            if dev and dev != context.window_manager.streamtalker_live.device:
                layout.label(text=f"Preferences device: {dev}")
            if sess is not None and sess.state == "failed":
                layout.label(text=sess.error, icon="ERROR")
            elif sess is not None and sess.recorded_action:
                layout.label(text=f"Recorded '{sess.recorded_action}'", icon="CHECKMARK")


def _draw_expected_latency(layout, context) -> None:
    """The preference "Live Latency" (when the add-on is enabled as one) and the expected
    latency of that setting on the chosen model: chunk length + look-ahead."""
    prefs = get_prefs(context)
    if prefs is not None:
        layout.prop(prefs, "live_latency", text="")
    try:
        ms, k, la = expected_latency(context)
    except Exception:    # no or an unreadable model: the Model panel says so  # noqa: BLE001
        return
    layout.label(text=f"Expected latency {ms:.0f} ms ({k}-frame chunks + {la:g} ms "
                      f"look-ahead)", icon="TIME")


classes = (STREAMTALKER_UL_mapping, STREAMTALKER_PT_main, STREAMTALKER_PT_source,
           STREAMTALKER_PT_target, STREAMTALKER_PT_model, STREAMTALKER_PT_live)


#: Blender's register / unregister for :data:`classes` (unregister in reverse order).
register, unregister = bpy.utils.register_classes_factory(classes)
