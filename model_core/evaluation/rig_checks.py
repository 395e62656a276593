"""Lip-sync checks on a viseme or vowel rig (``streamtalker evaluate --rig oculus|vrm|mmd``).

The model's ARKit frames are converted as a rig receives them
(:class:`model_core.runtime.rigs.RigConverter`) and scored against the clip's phone
alignment (frame ``i`` lies in a phone when ``start <= i / fps < end``; ARPAbet labels,
stress digits ignored, as :mod:`.metrics`):

* **PP closure** (viseme rigs): a P, B or M is closed when ``PP`` reaches 0.5 within one
  frame of it (its frames widened by one on each side, :func:`~model_core.training.phonemes
  .phone_frames` with ``widen=1``; every P/B/M whose widened frames overlap the clip
  counts). Must hold: >= 90 % of them.
* **Open-vowel dominance**: on the frames of open vowels the open shapes are the largest of
  the rig's mouth shapes: ``aa`` or ``O`` on ``AA AE AH AO AW AY`` (viseme rigs); ``a`` on
  ``AA AE AH AW AY`` (vowel rigs: ``AO``, /ɔ/, is rounded and scored below). Must hold: on
  a majority (> 50 %) of those frames: the open shape dominates. The share of phones whose
  mean weights put it first is printed too.
* **Rounded-vowel dominance**: ``u`` or ``o`` the largest vowel on ``AO OW UW UH OY``
  (vowel rigs; must hold > 50 %); ``O`` or ``U`` for viseme rigs (printed, not a check).

Each figure is printed for the model, for the teacher's reference curves through the same
map, and for the teacher's viseme track itself (:func:`model_core.training.rigmaps
.target_curves`: what a perfect map would give), so the loss of each step is visible.
"""

from __future__ import annotations

import math

import numpy as np

from ..face import rig_kind
from ..training.phonemes import BILABIALS_ARPABET, OPEN_VOWELS_ARPABET, phone_frames
from .metrics import _base, check_fps

__all__ = ["RIG_CHECKS", "ROUNDED_VOWELS", "rig_counts", "evaluate_rig", "format_rig"]

#: Rounded vowels of the rounded-dominance figure (ARPAbet).
ROUNDED_VOWELS = frozenset({"AO", "OW", "UW", "UH", "OY"})
#: (description, lower bound) of each check, by shape set.
RIG_CHECKS = {
    "visemes": {"pp_closure": ("PP >= 0.5 within one frame of >= 90 % of P/B/M", 0.9),
                "open_dominance": ("aa or O the largest viseme on > 50 % of open-vowel "
                                   "frames", 0.5)},
    "vowels": {"open_dominance": ("a the largest vowel on > 50 % of open-vowel frames", 0.5),
               "rounded_dominance": ("u or o the largest vowel on > 50 % of rounded-vowel "
                                     "frames", 0.5)},
}


def _groups(shape_set: str):
    """(open phones, open shapes, rounded shapes) of a shape set."""
    if shape_set == "visemes":
        return OPEN_VOWELS_ARPABET, ("aa", "O"), ("O", "U")
    return OPEN_VOWELS_ARPABET - {"AO"}, ("a",), ("u", "o")


def rig_counts(weights, kind: str, phones, fps) -> dict:
    """The counts behind the checks for one clip.

    Args:
        weights: float ``[T, C]`` the rig's channels (:attr:`RigKind.channels` order; only
            the mouth shapes, the first ``len(kind.shapes)`` columns, are read).
        kind: a rig kind other than ``"arkit"``; phones: ``[(label, start_s, end_s)]``
            ARPAbet; fps: frames per second.
    Returns:
        ``{"pp_n", "pp_closed", "open_frames", "open_ok", "open_phone_n", "open_phone_ok",
        "round_frames", "round_ok"}`` (ints; ``pp_*`` 0 for vowel rigs).
    Raises:
        ValueError: ARKit or an unknown kind, weights not [T, C], bad fps.
    """
    k = rig_kind(kind)
    if not k.shape_set:
        raise ValueError("the rig checks are for viseme and vowel rigs, not ARKit")
    f = check_fps(fps)
    w = np.asarray(weights, np.float64)
    S = len(k.shapes)
    if w.ndim != 2 or w.shape[1] < S:
        raise ValueError(f"weights must be [T, {len(k.channels)}] ({k.label}), got {w.shape}")
    shapes = w[:, :S]
    ids = list(k.shape_ids)
    open_ph, open_sh, round_sh = _groups(k.shape_set)
    top = shapes.argmax(axis=1) if len(shapes) else np.zeros(0, np.int64)
    open_i = [ids.index(s) for s in open_sh]
    round_i = [ids.index(s) for s in round_sh]
    c = dict.fromkeys(("pp_n", "pp_closed", "open_frames", "open_ok", "open_phone_n",
                       "open_phone_ok", "round_frames", "round_ok"), 0)
    n = len(shapes)
    for label, s, e in phones:
        b = _base(label)
        if k.shape_set == "visemes" and b in BILABIALS_ARPABET:
            fr = phone_frames(s, e, f, n, widen=1)
            if fr.size:
                c["pp_n"] += 1
                c["pp_closed"] += bool(shapes[fr, ids.index("PP")].max() >= 0.5)
        if b in open_ph or b in ROUNDED_VOWELS:
            fr = phone_frames(s, e, f, n)
            if b in open_ph:
                c["open_frames"] += fr.size
                c["open_ok"] += int(np.isin(top[fr], open_i).sum())
                if fr.size:
                    c["open_phone_n"] += 1
                    c["open_phone_ok"] += int(shapes[fr].mean(axis=0).argmax() in open_i)
            if b in ROUNDED_VOWELS:
                c["round_frames"] += fr.size
                c["round_ok"] += int(np.isin(top[fr], round_i).sum())
    return c


def _rates(c: dict) -> dict:
    def r(a, b):
        return c[a] / c[b] if c[b] else float("nan")
    return {"pp_closure": r("pp_closed", "pp_n"), "open_dominance": r("open_ok", "open_frames"),
            "open_phones": r("open_phone_ok", "open_phone_n"),
            "rounded_dominance": r("round_ok", "round_frames"), **c}


def _pool(parts) -> dict:
    tot: dict = {}
    for p in parts:
        for key, v in p.items():
            tot[key] = tot.get(key, 0) + v
    return _rates(tot)


def evaluate_rig(items, preds, kind: str) -> dict:
    """The rig checks over an evaluation set.

    Args:
        items: :class:`~model_core.evaluation.evaluate.EvalItem` list (phones, reference).
        preds: per item, a list of float ``[T, 52]`` ARKit predictions (one per seed).
        kind: ``"oculus"``, ``"vrm"`` or ``"mmd"``.
    Returns:
        ``{"kind", "label", "model", "teacher", "track"}`` (each the pooled figures of
        :func:`rig_counts` with rates ``pp_closure``, ``open_dominance``, ``open_phones``,
        ``rounded_dominance``; the model pooled over seeds), ``"checks"`` ({key: {"rule",
        "value", "pass"}}) and ``"all_pass"``.
    Raises:
        ValueError: ARKit or an unknown kind; FileNotFoundError: the maps are missing.
    """
    from ..runtime.rigs import RigConverter
    from ..training.rigmaps import target_curves

    conv = RigConverter(kind)
    k = conv.kind
    if not k.shape_set:
        raise ValueError("--rig arkit needs no rig checks: the model's own channels are scored")
    model, teacher, track = [], [], []
    for it, plist in zip(items, preds):
        for a in plist:
            model.append(rig_counts(conv(np.asarray(a, np.float32)), kind, it.phones, it.fps))
        teacher.append(rig_counts(conv(it.reference), kind, it.phones, it.fps))
        y = target_curves(it.phones, it.n_frames / it.fps, it.fps, k.shape_set)
        track.append(rig_counts(y[:it.n_frames], kind, it.phones, it.fps))
    res = {"kind": k.name, "label": k.label, "model": _pool(model), "teacher": _pool(teacher),
           "track": _pool(track)}
    checks = {}
    for key, (rule, lo) in RIG_CHECKS[k.shape_set].items():
        v = res["model"][key]
        ok = None if not math.isfinite(v) else bool(v >= lo if key == "pp_closure" else v > lo)
        checks[key] = {"rule": rule, "value": v, "pass": ok}
    res["checks"] = checks
    res["all_pass"] = all(c["pass"] is True for c in checks.values())
    return res


def format_rig(res: dict) -> str:
    """A Markdown table of :func:`evaluate_rig`: model | teacher through the map | the
    teacher's viseme track, then the checks (PASS / FAIL / n/a)."""
    def cell(r, key, n_key):
        v = r[key]
        if not math.isfinite(v):
            return "–"
        return f"{v:.3f} ({r[n_key[0]]}/{r[n_key[1]]})"

    rows = []
    if rig_kind(res["kind"]).shape_set == "visemes":
        rows.append(("PP >= 0.5 near P/B/M", "pp_closure", ("pp_closed", "pp_n")))
    open_sh, round_sh = _groups(rig_kind(res["kind"]).shape_set)[1:]
    rows += [(f"{' or '.join(open_sh)} largest, open-vowel frames", "open_dominance",
              ("open_ok", "open_frames")),
             (f"{' or '.join(open_sh)} first, open-vowel phones", "open_phones",
              ("open_phone_ok", "open_phone_n")),
             (f"{' or '.join(round_sh)} largest, rounded-vowel frames", "rounded_dominance",
              ("round_ok", "round_frames"))]
    head = ["figure", "model", "teacher -> map", "teacher's viseme track"]
    body = [[t, cell(res["model"], k, n), cell(res["teacher"], k, n), cell(res["track"], k, n)]
            for t, k, n in rows]
    widths = [max(len(r[j]) for r in [head] + body) for j in range(4)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    out = [f"Face rig {res['label']} (--rig {res['kind']}): model | teacher's curves through "
           f"the same map | the teacher's viseme track (a perfect map).", "",
           line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in body]
    out.append("")
    for c in res["checks"].values():
        verdict = {True: "PASS", False: "FAIL", None: "n/a"}[c["pass"]]
        v = "–" if not math.isfinite(c["value"]) else f"{c['value']:.3f}"
        out.append(f"- {verdict}: {c['rule']}: {v}")
    out.append(f"- all rig checks pass: {'yes' if res['all_pass'] else 'no'}")
    return "\n".join(out)
