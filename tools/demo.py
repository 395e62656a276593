"""The StreamTalker demo on real input, headless with the ``bpy`` module.

``.venv/bin/python tools/demo.py [--clip WAV | --say TEXT --voice fr3] [--out out/]
[--engine WORKBENCH|CYCLES] [--size 256] [--frames 12] [--no-video]
[--rig arkit|oculus|vrm|mmd]``

With ``--rig oculus`` (or ``vrm``, ``mmd``) the head is first turned into a viseme or vowel
head (``tools/rig_heads.py``: its ARKit mouth keys replaced by ``viseme_PP`` ... or ``aa``
...), so the add-on must detect that rig and drive it through the fitted map; the contact
sheet then picks frames on the PP and open-vowel shapes and labels them with the strongest
shapes, the plot shows the rig's shapes, and the summary prints ``streamtalker evaluate
--rig``'s figures for the clip.

1. imports the Face Cap head (``inputs/facecap/facecap.glb``, see ``tools/fetch_facecap.py``),
2. adds a real LibriVox clip as a sound strip at frame 1 of a 30 fps scene,
3. runs the add-on's **Generate Lip Sync** operator as a user would (the bundled default
   model; the drain timer is pumped here because timers never fire in the ``bpy`` module),
4. saves ``out/demo.blend`` (with a camera framed on the head),
5. renders a contact sheet ``out/demo-contact.png``: frames chosen on bilabials (M, B, P:
   lips closed), open vowels (AA, AE, AH, AO, AW, AY: jaw open) and blinks, labelled with the
   phone from the clip's reference alignment (``<clip>.phone.json``) and the key values,
6. plots ``out/demo-curves.png`` (jawOpen, mouthClose, eyeBlinkLeft, browInnerUp over time
   with the phones), and
7. renders ``out/demo.mp4`` with the audio when ``ffmpeg`` is on PATH,

then prints a timing summary: model load, generation time and real-time factor, keys
written, render time (all seconds of wall-clock time on this machine).

Nothing is overwritten: when ``out/demo.blend`` (or one of its companions) exists the demo
uses ``demo-2``, ``demo-3``, ... Exits with status 2 and one sentence when an input is
missing or the generation fails.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CLIP = ROOT / "inputs" / "speech" / "librivox" / "sense_and_sensibility_01_austen_64kb-0870.wav"
FACECAP = ROOT / "inputs" / "facecap" / "facecap.glb"
BILABIALS = {"M", "B", "P"}
OPEN_VOWELS = {"AA", "AE", "AH", "AO", "AW", "AY"}
ROUNDED = {"UW", "OW", "UH", "W", "OY"}
PLOT_CHANNELS = ("jawOpen", "mouthClose", "mouthFunnel+mouthPucker", "eyeBlinkLeft")
#: Per rig kind: (closed-lips shape, open shapes, the rows of the curves plot).
RIG_PLOT = {
    "oculus": ("viseme_PP", ("viseme_aa", "viseme_O"),
               ("viseme_PP", "viseme_aa", "viseme_O", "viseme_E+viseme_I", "viseme_U",
                "viseme_sil", "eyeBlinkLeft")),
    "vrm": (None, ("aa",), ("aa", "ih", "ou", "ee", "oh", "blink")),
    "mmd": (None, ("あ",), ("あ", "い", "う", "え", "お", "まばたき")),
}
SETUP_HINT = "run `bash tools/setup.sh` first"


def kind(ph: str) -> str:
    """``"bilabial"``, ``"open"``, ``"rounded"`` or ``""`` for a phone label: ARPAbet from
    pocketsphinx, or IPA (any non-ASCII label, or a clip with ``.phones.json``: the rule of
    :func:`model_core.evaluation.metrics.phone_measure_class`)."""
    base = ph.rstrip("012").upper()
    if base in BILABIALS or base in OPEN_VOWELS or base in ROUNDED:
        return "bilabial" if base in BILABIALS else "open" if base in OPEN_VOWELS else "rounded"
    if not any(ord(c) > 127 for c in ph) and ph.upper() == ph:
        return ""
    from model_core.evaluation.metrics import phone_measure_class
    c = phone_measure_class(ph, "ipa")
    return "bilabial" if c["bilabial"] else "open" if c["open"] else \
        "rounded" if c["rounded"] else ""


class DemoError(RuntimeError):
    """A missing input or a failed step (message: one sentence)."""


# -- inputs -------------------------------------------------------------------------------
def load_phones(clip: Path) -> list[tuple[str, float, float, str]]:
    """[(phone, start s, end s, word)] from ``<clip stem>.phone.json`` (pocketsphinx's
    reference alignment shipped with the clip), or the IPA phones of ``<clip
    stem>.phones.json`` (a clip in any language with exact timing, ``streamtalker
    make-evalset --recipe v4``; no words), or [] when there is none."""
    side = clip.with_name(clip.stem + ".phones.json")
    if side.exists():
        return [(str(a), float(b), float(c), "") for a, b, c in json.loads(side.read_text())["phones"]]
    p = clip.with_suffix(".phone.json")
    if not p.exists():
        return []
    data = json.loads(p.read_text())
    out = []
    for w in data.get("w", []):
        word = w["t"].split("(")[0]
        for ph in w.get("w", []):
            out.append((ph["t"], float(ph["b"]), float(ph["b"]) + float(ph["d"]), word))
    return out


def unique_stem(out_dir: Path, name: str, suffixes) -> Path:
    """``out_dir/name`` if none of ``name + suffix`` exists, else ``name-2``, ``name-3``..."""
    i = 1
    while True:
        stem = out_dir / (name if i == 1 else f"{name}-{i}")
        if not any(Path(f"{stem}{s}").exists() for s in suffixes):
            return stem
        i += 1


# -- scene --------------------------------------------------------------------------------
def import_head(bpy):
    """Import the Face Cap head; returns the mesh object with shape keys."""
    if not FACECAP.exists():
        raise DemoError(f"the Face Cap head {FACECAP} is missing: run "
                        f"`.venv/bin/python tools/fetch_facecap.py` or {SETUP_HINT}")
    before = set(bpy.data.objects)
    bpy.ops.import_scene.gltf(filepath=str(FACECAP))
    heads = [o for o in bpy.data.objects if o not in before and o.type == "MESH"
             and o.data.shape_keys is not None]
    if len(heads) != 1:
        raise DemoError(f"expected one mesh with shape keys in {FACECAP}, got {len(heads)}")
    return heads[0]


def world_bbox(obj) -> tuple[np.ndarray, np.ndarray]:
    """(min, max) world-space corners of ``obj``'s evaluated vertices (parents included)."""
    m = np.array(obj.matrix_world)
    co = np.zeros(len(obj.data.vertices) * 3, np.float64)
    obj.data.vertices.foreach_get("co", co)
    w = co.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3]
    return w.min(0), w.max(0)


def setup_render(bpy, scene, head, engine: str, size: int):
    """Camera framed on the head's world bounding box (looking at its face, which points
    to -Y after the glTF import), lighting, colours and a small render size."""
    from mathutils import Euler
    lo, hi = world_bbox(head)
    # the face: chin to brows (the lower 72 % of the head's height), ears excluded
    hi = hi.copy()
    hi[2] = lo[2] + 0.72 * (hi[2] - lo[2])
    center = (lo + hi) / 2
    height = (hi[2] - lo[2]) * 1.06
    width = (hi[0] - lo[0]) * 0.80
    cam_data = bpy.data.cameras.new("DemoCamera")
    cam_data.lens = 85.0
    cam_data.sensor_fit = "AUTO"
    fov = 2 * math.atan(cam_data.sensor_width / 2 / cam_data.lens)
    dist = max(height, width) / 2 / math.tan(fov / 2) + (center[1] - lo[1])
    cam = bpy.data.objects.new("DemoCamera", cam_data)
    scene.collection.objects.link(cam)
    cam.location = (center[0], center[1] - dist, center[2])
    cam.rotation_euler = Euler((math.radians(90), 0, 0))
    cam_data.clip_end = dist * 4
    scene.camera = cam
    # colours: skin head, dark irises so that blinks read, white teeth
    for o in scene.objects:
        if o.type == "MESH":
            n = o.name.lower()
            o.color = ((0.08, 0.06, 0.05, 1) if "eye" in n else
                       (0.95, 0.93, 0.88, 1) if "teeth" in n else (0.80, 0.62, 0.52, 1))
    r = scene.render
    r.resolution_x = r.resolution_y = size
    r.resolution_percentage = 100
    r.image_settings.file_format = "PNG"
    r.film_transparent = False
    if engine == "CYCLES":
        r.engine = "CYCLES"
        scene.cycles.device = "CPU"
        scene.cycles.samples = 8
        scene.cycles.use_denoising = False
        mats = {}
        for o in scene.objects:  # plain materials in the object colours (texture was dropped)
            if o.type == "MESH":
                key = tuple(round(c, 2) for c in o.color)
                if key not in mats:
                    m = bpy.data.materials.new(f"Demo{len(mats)}")
                    m.diffuse_color = o.color
                    if getattr(m, "node_tree", None) is None and hasattr(m, "use_nodes"):
                        m.use_nodes = True
                    bsdf = m.node_tree.nodes.get("Principled BSDF") if m.node_tree else None
                    if bsdf is not None:
                        bsdf.inputs["Base Color"].default_value = o.color
                        bsdf.inputs["Roughness"].default_value = 0.55
                    mats[key] = m
                if len(o.data.materials) == 0:
                    o.data.materials.append(mats[key])
                for i in range(len(o.data.materials)):
                    o.data.materials[i] = mats[key]
        light = bpy.data.objects.new("DemoKey", bpy.data.lights.new("DemoKey", "AREA"))
        light.data.energy = 120 * (dist / 5) ** 2
        light.data.size = dist
        light.location = (center[0] - dist * 0.4, center[1] - dist, center[2] + dist * 0.5)
        light.rotation_euler = Euler((math.radians(60), 0, math.radians(-20)))
        scene.collection.objects.link(light)
        world = bpy.data.worlds.new("DemoWorld")
        world.color = (0.12, 0.12, 0.13)
        scene.world = world
    else:
        r.engine = "BLENDER_WORKBENCH"
        sh = scene.display.shading
        sh.light = "STUDIO"
        sh.color_type = "OBJECT"
        sh.show_cavity = True
        sh.background_type = "VIEWPORT"
        sh.background_color = (0.18, 0.19, 0.22)
        scene.display.render_aa = "8"
    return cam


# -- generation ---------------------------------------------------------------------------
def generate(bpy, scene):
    """Press Generate Lip Sync and pump the drain timer to the end.

    Returns (job, t_model_s, t_generate_s): time to the first model message (model load
    + audio read) and from there to the last keys.
    Raises:
        DemoError: the operator refused or the job failed.
    """
    from streamtalker_addon import jobs
    t0 = time.perf_counter()
    r = bpy.ops.streamtalker.generate()
    if r != {"FINISHED"}:
        raise DemoError(f"Generate Lip Sync returned {r}")
    job = jobs.active_job()
    t_model = None
    while jobs.drain() is not None:
        if t_model is None and job.channels is not None:
            t_model = time.perf_counter()
        time.sleep(0.005)
    t1 = time.perf_counter()
    if job.worker is not None:
        job.worker.join(10)
    if job.state != "finished":
        raise DemoError(f"generation {job.state}: {job.error}")
    t_model = t_model or t1
    return job, t_model - t0, t1 - t_model


def read_curves(head, job) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(frames, {ARKit channel: values}) read back from the new action's f-curves (the
    job's action: a generated line sits on the NLA, docs/blender.md section 8)."""
    from streamtalker_addon.keyframes import action_fcurves
    key = head.data.shape_keys
    action = job.action or key.animation_data.action
    by_key = {}
    for fc in action_fcurves(action, key.animation_data):
        co = np.zeros(2 * len(fc.keyframe_points), np.float32)
        fc.keyframe_points.foreach_get("co", co)
        by_key[fc.data_path.split('"')[1]] = co.reshape(-1, 2)
    frames = None
    out = {}
    for ch, sk in job.targets.items():
        if sk in by_key:
            out[ch] = by_key[sk][:, 1]
            frames = by_key[sk][:, 0] if frames is None else frames
    return frames, out


# -- picking frames -----------------------------------------------------------------------
def pick_frames(frames, curves, phones, fps, first, n=12) -> list[tuple[int, str]]:
    """About ``n`` frames with reasons: bilabial closures, open vowels, blinks, one rest."""
    jaw, close = curves["jawOpen"], curves.get("mouthClose", np.zeros_like(curves["jawOpen"]))
    blink = (curves.get("eyeBlinkLeft", 0 * jaw) + curves.get("eyeBlinkRight", 0 * jaw)) / 2
    idx_of = lambda f: int(np.clip(round(f - frames[0]), 0, len(frames) - 1))  # noqa: E731
    cands = {"bilabial": [], "vowel": []}
    for ph, b, e, word in phones:
        lo, hi = idx_of(first + b * fps), idx_of(first + e * fps)
        hi = max(hi, lo + 1)
        where = f"{ph} in '{word}'" if word else ph
        if kind(ph) == "bilabial":
            i = lo + int(np.argmin(jaw[lo:hi + 1] - close[lo:hi + 1]))
            cands["bilabial"].append((float(close[i] - jaw[i]), i, where))
        elif kind(ph) == "open":
            i = lo + int(np.argmax(jaw[lo:hi]))
            cands["vowel"].append((float(jaw[i]), i, where))
    picked: list[tuple[int, str]] = []

    def take(items, k, gap=4):
        for _, i, why in sorted(items, reverse=True):
            if k <= 0:
                break
            if all(abs(i - j) >= gap for j, _ in picked):
                picked.append((i, why))
                k -= 1

    n_lip = max(1, (n - 4) // 2)
    take(cands["bilabial"], n_lip)
    take(cands["vowel"], n_lip)
    # blinks: local maxima above 0.4
    peaks = [i for i in range(1, len(blink) - 1)
             if blink[i] >= 0.4 and blink[i] >= blink[i - 1] and blink[i] >= blink[i + 1]]
    take([(float(blink[i]), i, "blink") for i in peaks], 3, gap=3)
    # rest: the quietest frame (low jaw, no blink), then fill with the strongest jaw motion
    rest = [(float(-jaw[i] - blink[i]), i, "rest") for i in range(len(jaw))]
    take(rest, 1, gap=6)
    take(cands["bilabial"], (n - len(picked)) // 2)
    take(cands["vowel"], n - len(picked))
    return sorted((int(frames[i]), why) for i, why in picked[:n])


def rig_pick_curves(curves: dict, rig: str) -> dict:
    """Surrogate curves for :func:`pick_frames` on a viseme or vowel rig: ``jawOpen`` = the
    open shapes (``viseme_aa + viseme_O``; ``aa`` / ``あ``), ``mouthClose`` = the closed
    lips (``viseme_PP``; for vowel rigs 1 - the sum of the vowels), ``eyeBlinkLeft`` = the
    blink key the rig has."""
    from model_core.face import rig_kind
    k = rig_kind(rig)
    closed, opens, _rows = RIG_PLOT[rig]
    zero = np.zeros_like(next(iter(curves.values())))
    out = {"jawOpen": sum((curves.get(c, zero) for c in opens), zero)}
    if closed is not None:
        out["mouthClose"] = curves.get(closed, zero)
    else:
        out["mouthClose"] = 1.0 - sum((curves.get(c, zero) for c in k.shapes), zero)
    blink = curves.get("eyeBlinkLeft", curves.get(k.both_eyes))
    if blink is not None:
        out["eyeBlinkLeft"] = blink
    return out


def top_shapes(curves: dict, rig: str, i: int, k: int = 2) -> str:
    """The ``k`` strongest mouth shapes of the rig at frame index ``i``: ``"aa .71 O .12"``."""
    from model_core.face import rig_kind
    kind = rig_kind(rig)
    vals = sorted(((float(curves[c][i]), c) for c in kind.shapes if c in curves), reverse=True)
    return " ".join(f"{c.replace('viseme_', '')} {v:.2f}" for v, c in vals[:k])


def rig_figures(curves, item, rig: str) -> dict:
    """``streamtalker evaluate --rig``'s counts on this clip
    (:func:`model_core.evaluation.rig_checks.rig_counts`): the generated rig curves, the
    teacher's reference through the same map, and the teacher's viseme track."""
    from model_core.evaluation.rig_checks import _rates, rig_counts
    from model_core.face import rig_kind
    from model_core.runtime.rigs import RigConverter
    from model_core.training.rigmaps import target_curves
    k = rig_kind(rig)
    n = len(next(iter(curves.values())))
    x = np.zeros((n, len(k.channels)), np.float32)
    for j, c in enumerate(k.channels):
        if c in curves:
            x[:, j] = curves[c]
    ref = RigConverter(rig)(item.reference[:n])
    track = target_curves(item.phones, n / item.fps, item.fps, k.shape_set)
    return {who: _rates(rig_counts(a, rig, item.phones, item.fps))
            for who, a in (("model", x), ("teacher", ref), ("track", track))}


def phone_at(phones, t, fps) -> str:
    """The phone holding the frame at ``t`` s (``start <= t < end``, the rule of
    :mod:`model_core.evaluation.metrics`), else "-"."""
    for ph, b, e, word in phones:
        if b <= t + 1e-9 < e:
            return f"{ph} '{word}'"
    return "-"


def curves_matrix(curves) -> np.ndarray:
    """{ARKit channel: values [n]} -> float32 [n, 52] in ARKit-52 order (missing = 0)."""
    from model_core.face import ARKIT_52
    n = len(curves["jawOpen"])
    x = np.zeros((n, len(ARKIT_52)), np.float32)
    for i, ch in enumerate(ARKIT_52):
        if ch in curves:
            x[:, i] = curves[ch]
    return x


def eval_item(clip: Path, fps: float):
    """The clip as ``streamtalker evaluate`` sees it: pocketsphinx phones (or the clip's
    ``.phones.json``) and the teacher's curves on them
    (:func:`model_core.evaluation.evaluate.build_eval_set`), or None without either."""
    from model_core.evaluation.evaluate import build_eval_set
    if not clip.with_suffix(".txt").exists() and \
            not clip.with_name(clip.stem + ".phones.json").exists():
        return None
    return build_eval_set(clip.parent, fps, names=[clip.stem])[0]


def lip_sync_figures(curves, item) -> dict:
    """The lip-gap measures of ``streamtalker evaluate`` on this clip (closure, open/closed
    gap ratio, openness r, rounding; :mod:`model_core.evaluation.metrics`), for the generated curves
    and for the teacher on the same alignment (the ceiling), on the Face Cap head's
    geometry; plus both lip gaps per frame (mm) for the plot."""
    from model_core.evaluation import metrics
    from model_core.evaluation.arkit_head import load_head
    head = load_head()
    x = curves_matrix(curves)
    ref = item.reference[:len(x)]
    gap, ref_gap = head.lip_gap(x), head.lip_gap(ref)
    model = metrics.lip_gap_measures(gap, x, item.phones, item.fps, alphabet=item.alphabet)
    teacher = metrics.lip_gap_measures(ref_gap, ref, item.phones, item.fps,
                                       alphabet=item.alphabet)
    return dict(model=model, teacher=teacher, gap=gap, ref_gap=ref_gap,
                blinks=metrics.count_blinks(x))


# -- rendering ----------------------------------------------------------------------------
def render_frames(bpy, scene, frame_list, folder: Path) -> tuple[list[Path], float]:
    """Render each scene frame of ``frame_list`` to ``folder``; (paths, seconds)."""
    paths = []
    t0 = time.perf_counter()
    for f in frame_list:
        scene.frame_set(int(f))
        p = folder / f"{int(f):05d}.png"
        scene.render.filepath = str(p)
        bpy.ops.render.render(write_still=True)
        paths.append(p)
    return paths, time.perf_counter() - t0


def contact_sheet(paths, labels, out: Path, title: str) -> None:
    """A grid (4 columns) of the rendered frames with one label each, as PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cols = 4
    rows = math.ceil(len(paths) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 3.0, rows * 3.35), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, p, lab in zip(axes.flat, paths, labels):
        ax.imshow(plt.imread(str(p)))
        ax.set_title(lab, fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / (rows * 3.35)))
    fig.savefig(out, dpi=100)
    plt.close(fig)


def curves_plot(frames, curves, phones, fps, first, picked, out: Path, title: str,
                figures: dict | None = None, channels=PLOT_CHANNELS) -> None:
    """The lip gap on the Face Cap head (model and teacher, mm), then ``channels`` (default
    jawOpen, mouthClose, mouthFunnel + mouthPucker and eyeBlinkLeft; ``a+b`` sums) against
    time, with the phones."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    t = (frames - first) / fps
    rows = (["lip gap (mm)"] if figures else []) + list(channels)
    fig, axes = plt.subplots(len(rows), 1, figsize=(12, 2 * len(rows)), sharex=True)
    for ax, ch in zip(axes, rows):
        for ph, b, e, _ in phones:
            if kind(ph) == "bilabial":
                ax.axvspan(b, e, color="tab:red", alpha=0.18, lw=0)
            elif kind(ph) == "open":
                ax.axvspan(b, e, color="tab:blue", alpha=0.10, lw=0)
            elif kind(ph) == "rounded":
                ax.axvspan(b, e, color="tab:purple", alpha=0.10, lw=0)
        if ch == "lip gap (mm)":
            ax.plot(t, figures["ref_gap"][:len(t)], color="0.55", lw=1.0, ls="--",
                    label="teacher (ceiling)")
            ax.plot(t, figures["gap"][:len(t)], color="k", lw=1.2, label="model")
            ax.legend(loc="upper right", fontsize=8)
        else:
            y = sum(curves[c] for c in ch.split("+") if c in curves)
            if not np.isscalar(y):
                ax.plot(t, y, color="k", lw=1.2)
            ax.set_ylim(-0.02, 1.02)
        for f, _ in picked:
            ax.axvline((f - first) / fps, color="tab:green", lw=0.6, ls=":")
        ax.set_ylabel(ch.replace("+", "\n+"), fontsize=9)
    top = axes[0]
    ymax = top.get_ylim()[1]
    for ph, b, e, _ in phones:
        if ph != "SIL":
            top.text((b + e) / 2, ymax * 1.02, ph, fontsize=6, ha="center", va="bottom",
                     rotation=90, color="tab:red" if kind(ph) == "bilabial" else
                     "tab:blue" if kind(ph) == "open" else
                     "tab:purple" if kind(ph) == "rounded" else "0.3")
    axes[-1].set_xlabel("time in the clip (s)   red: bilabial M/B/P   blue: open vowel   "
                        "purple: rounded   green: contact-sheet frames")
    fig.suptitle(title, fontsize=10, y=0.995)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def make_video(bpy, scene, clip: Path, first: int, last: int, fps: float, out: Path,
               size: int) -> float:
    """Render frames ``first..last`` and mux them with the clip into ``out`` (H.264 + AAC)
    with ffmpeg. Returns the render seconds."""
    with tempfile.TemporaryDirectory(prefix="streamtalker-demo-") as td:
        scene.render.resolution_x = scene.render.resolution_y = size
        _, secs = render_frames(bpy, scene, range(first, last + 1), Path(td))
        tmp = out.with_name(f".{out.name}.tmp.mp4")
        cmd = ["ffmpeg", "-loglevel", "error", "-y", "-framerate", f"{fps:g}",
               "-start_number", str(first), "-i", os.path.join(td, "%05d.png"), "-i", str(clip),
               "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "20", "-c:a", "aac",
               "-b:a", "96k", "-shortest", str(tmp)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise DemoError(f"ffmpeg failed: {r.stderr.strip()[-400:]}")
        if out.exists():
            tmp.unlink()
            raise DemoError(f"{out} appeared meanwhile: not overwriting it")
        os.replace(tmp, out)
    return secs


# -- main ---------------------------------------------------------------------------------
def say(text: str, voice: str, out_dir: Path, name: str) -> Path:
    """Speak ``text`` with an MBROLA voice (a recorded voice; ``model_core.training.mbrola``)
    into ``out_dir/<name>.wav`` (16 kHz) with ``<name>.phones.json`` beside it (exact IPA
    phone timing), for a demo clip in another language; returns the wav path."""
    import soundfile as sf
    from model_core.io.audio import Resampler
    from model_core.training.mbrola import mbrola_synthesize
    try:
        u = mbrola_synthesize(text, voice, rate=150, vowel_ratio=1.6)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        raise DemoError(f"could not speak the second clip: {e}") from None
    x = Resampler(u.sample_rate, 16000).process(u.samples, last=True)
    x = (x / (np.max(np.abs(x)) + 1e-9) * 0.9).astype(np.float32)
    stem = unique_stem(out_dir, name, (".wav", ".phones.json"))
    wav = Path(f"{stem}.wav")
    sf.write(str(wav), x, 16000, subtype="PCM_16")
    Path(f"{stem}.phones.json").write_text(json.dumps(
        {"alphabet": "ipa", "language": u.voice, "voice": voice, "text": text,
         "phones": [list(p) for p in u.phones]}, ensure_ascii=False, indent=1) + "\n",
        encoding="utf-8")
    return wav


def run(args) -> dict:
    if args.say:
        args.clip = str(say(args.say, args.voice, Path(args.out), f"{args.name}-speech"))
    clip = Path(args.clip).resolve()
    if not clip.exists():
        raise DemoError(f"the speech clip {clip} is missing: run "
                        f"`.venv/bin/python tools/fetch_inputs.py` or {SETUP_HINT}")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = args.name if args.name != "demo" or args.rig == "arkit" else f"demo-{args.rig}"
    stem = unique_stem(out_dir, name, (".blend", "-contact.png", "-curves.png", ".mp4"))
    try:
        import bpy
    except ImportError as e:
        raise DemoError(f"the demo needs the bpy module ({e}): {SETUP_HINT}") from None
    import streamtalker_addon
    bpy.ops.wm.read_factory_settings(use_empty=True)
    if not hasattr(bpy.types.Scene, "streamtalker"):
        streamtalker_addon.register()

    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    fps = scene.render.fps / scene.render.fps_base
    head = import_head(bpy)
    if args.rig != "arkit":
        sys.path.insert(0, str(ROOT / "tools"))
        from rig_heads import build_rig_head
        build_rig_head(head, args.rig)     # the mouth keys are now visemes or vowels
    bpy.context.view_layer.objects.active = head
    head.select_set(True)
    ed = scene.sequence_editor_create()
    strips = ed.strips if hasattr(ed, "strips") else ed.sequences
    strip = strips.new_sound("speech", str(clip), 1, 1)
    scene.frame_start, scene.frame_end = strip.frame_final_start, strip.frame_final_end - 1
    scene.streamtalker.source = "STRIP"
    scene.streamtalker.model_source = "DEFAULT"
    scene.streamtalker.seed = args.seed
    bpy.context.view_layer.update()

    job, t_model, t_gen = generate(bpy, scene)
    frames, curves = read_curves(head, job)
    n_keys = sum(len(fc.keyframe_points) for fc in _fcurves(head, job.action))
    duration = job.source.n_frames / fps
    phones = load_phones(clip)
    first = strip.frame_final_start

    item = eval_item(clip, fps)
    rig = args.rig
    if rig != "arkit":
        if job.settings.face_rig != rig:
            raise DemoError(f"the add-on drove the head as {job.settings.face_rig!r}, not as "
                            f"the {rig!r} rig it was built as")
        shapes_curves, curves = curves, rig_pick_curves(curves, rig)
        figures = None
        rfig = rig_figures(shapes_curves, item, rig) if item is not None else None
    else:
        shapes_curves, rfig = curves, None
        figures = lip_sync_figures(curves, item) if item is not None else None
    cam = setup_render(bpy, scene, head, args.engine, args.size)
    scene.frame_set(first)
    blend = Path(f"{stem}.blend")
    bpy.ops.wm.save_as_mainfile(filepath=str(blend.resolve()), check_existing=False)

    picked = pick_frames(frames, curves, phones, fps, first, args.frames)
    with tempfile.TemporaryDirectory(prefix="streamtalker-demo-") as td:
        paths, t_render = render_frames(bpy, scene, [f for f, _ in picked], Path(td))
        labels = []
        for f, why in picked:
            i = int(round(f - frames[0]))
            tt = (f - first) / fps
            if rig == "arkit":
                lab = (f"f{f} {tt:.2f}s {phone_at(phones, tt, fps)}\n"
                       f"[{why}] jaw {curves['jawOpen'][i]:.2f}"
                       f" close {curves.get('mouthClose', curves['jawOpen'] * 0)[i]:.2f}"
                       f" blink {curves.get('eyeBlinkLeft', curves['jawOpen'] * 0)[i]:.2f}")
            else:
                lab = (f"f{f} {tt:.2f}s {phone_at(phones, tt, fps)}\n"
                       f"[{why}] {top_shapes(shapes_curves, rig, i)}"
                       f" blink {curves.get('eyeBlinkLeft', curves['jawOpen'] * 0)[i]:.2f}")
            labels.append(lab)
        sheet = Path(f"{stem}-contact.png")
        head_name = "Face Cap head" if rig == "arkit" else f"Face Cap head as a {rig} rig"
        contact_sheet(paths, labels, sheet, f"StreamTalker on {clip.name} ({head_name}, "
                                            f"bundled model, seed {args.seed})")
    plot = Path(f"{stem}-curves.png")
    curves_plot(frames, shapes_curves, phones, fps, first, picked, plot,
                f"{clip.name}: generated curves; phones from the clip's reference alignment",
                figures, PLOT_CHANNELS if rig == "arkit" else RIG_PLOT[rig][2])
    video, t_video = None, 0.0
    if args.video and shutil.which("ffmpeg"):
        video = Path(f"{stem}.mp4")
        t_video = make_video(bpy, scene, clip, first, strip.frame_final_end - 1, fps, video,
                             args.video_size)
    elif args.video:
        print("demo: ffmpeg not found on PATH: no MP4 (Debian: apt-get install ffmpeg)")
    return dict(blend=blend, sheet=sheet, plot=plot, video=video, t_model=t_model,
                t_gen=t_gen, duration=duration, n_frames=job.source.n_frames, n_keys=n_keys,
                n_curves=len(job.targets), t_render=t_render, n_render=len(paths),
                t_video=t_video, n_video=job.source.n_frames if video else 0, cam=cam.name,
                engine=args.engine, size=args.size, picked=picked, action=job.action_name,
                figures=figures, rig_figures=rfig, rig=rig)


def _fcurves(head, action=None):
    from streamtalker_addon.keyframes import action_fcurves
    ad = head.data.shape_keys.animation_data
    return action_fcurves(action or ad.action, ad)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default=str(CLIP), help="speech clip (default: a LibriVox clip)")
    ap.add_argument("--out", default=str(ROOT / "out"), help="output folder (default: out/)")
    ap.add_argument("--name", default="demo", help="file name stem (default: demo)")
    ap.add_argument("--engine", default="WORKBENCH", choices=["WORKBENCH", "CYCLES"])
    ap.add_argument("--size", type=int, default=256, help="contact-sheet frame size (px)")
    ap.add_argument("--video-size", type=int, default=256, help="MP4 frame size (px)")
    ap.add_argument("--frames", type=int, default=12, help="frames on the contact sheet")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--say", default=None, metavar="TEXT",
                    help="instead of --clip: speak TEXT with the MBROLA voice --voice (a voice "
                         "recorded from a person, in its language) and use that clip")
    ap.add_argument("--voice", default="fr3", help="MBROLA voice for --say (default fr3: "
                                                   "French, never trained on)")
    ap.add_argument("--no-video", dest="video", action="store_false",
                    help="skip the MP4 (it renders every frame of the clip)")
    ap.add_argument("--rig", default="arkit", choices=["arkit", "oculus", "vrm", "mmd"],
                    help="drive the head as this rig: oculus visemes, vrm or mmd vowels "
                         "(tools/rig_heads.py builds it from the Face Cap head); default arkit")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:
        r = run(args)
    except DemoError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 2
    rel = lambda p: os.path.relpath(p, os.getcwd()) if p else "-"  # noqa: E731
    print("\nStreamTalker demo: summary")
    print(f"  clip                {Path(args.clip).name}: {r['duration']:.2f} s, "
          f"{r['n_frames']} frames at 30 fps")
    print(f"  model load          {r['t_model']:.2f} s (bundled default model + reading the "
          f"strip's audio, in the worker thread)")
    print(f"  generation          {r['t_gen']:.2f} s for {r['duration']:.2f} s of audio: "
          f"real-time factor {r['t_gen'] / r['duration']:.3f} "
          f"({r['duration'] / max(r['t_gen'], 1e-9):.1f}x faster than real time)")
    print(f"  keys written        {r['n_keys']} ({r['n_curves']} shape keys x "
          f"{r['n_frames']} frames) into action '{r['action']}'")
    print(f"  render              {r['t_render']:.1f} s for {r['n_render']} frames "
          f"({r['engine'].lower()}, {r['size']}x{r['size']}, "
          f"{r['t_render'] / max(r['n_render'], 1):.2f} s/frame)")
    fg = r["figures"]
    if fg:
        def lip(m):
            return (f"closure {m['closure']:.2f} ({m['n_closed']}/{m['n_bilabials']}), "
                    f"open/closed gap {m['open_closed_ratio']:.1f}, openness r "
                    f"{m['openness_r']:.2f}, rounding {m['rounding']:.2f}")
        print(f"  lip sync (this clip, lip gap on the Face Cap head; streamtalker evaluate's "
              f"measures)\n    model               {lip(fg['model'])}; {fg['blinks']} blinks"
              f"\n    teacher (ceiling)   {lip(fg['teacher'])}")
    rf = r.get("rig_figures")
    if rf:
        def rig_line(m):
            parts = []
            if m["pp_n"]:
                parts.append(f"PP >= 0.5 on {m['pp_closed']}/{m['pp_n']} P/B/M")
            parts.append(f"open shape largest on {m['open_ok']}/{m['open_frames']} open-vowel "
                         f"frames, rounded on {m['round_ok']}/{m['round_frames']}")
            return ", ".join(parts)
        print(f"  rig {r['rig']} (this clip; streamtalker evaluate --rig's figures)"
              f"\n    model               {rig_line(rf['model'])}"
              f"\n    teacher -> map      {rig_line(rf['teacher'])}"
              f"\n    viseme track        {rig_line(rf['track'])}")
    if r["video"]:
        print(f"  video render        {r['t_video']:.1f} s for {r['n_video']} frames")
    print(f"  total               {time.perf_counter() - t0:.1f} s")
    print(f"  wrote               {rel(r['blend'])}, {rel(r['sheet'])}, {rel(r['plot'])}"
          + (f", {rel(r['video'])}" if r["video"] else ""))
    print("  contact-sheet frames " + ", ".join(f"{f} ({w})" for f, w in r["picked"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
