"""A real ARKit head's geometry, bpy-free: the neutral mesh and its 52 morph deltas, and the
lip gap that the lip-sync measures of :mod:`model_core.evaluation.metrics` are computed on.

Lip sync is judged where the viewer sees it: the distance between the lips after the
frame's blendshape weights are applied to a real head (docs/architecture.md, "Metrics"). A relative jaw
level cannot tell a mouth closed by ``mouthClose``/``mouthPress`` from one that is merely
less open; the geometry can.

The head is the three.js "Face Cap" head that ``tools/fetch_facecap.py`` writes to
``inputs/facecap/facecap.glb`` (from the PyPI wheel ``openfacefx==0.24.0``): 2694 vertices,
52 ARKit morph targets named ``browDown_L``-style, positions quantized to uint16 and morph
deltas to int16 (``KHR_mesh_quantization``), dequantized by the mesh node's scale and
translation. Its own units are centimetres (the head is 19 cm wide ear to ear, a full
``jawOpen`` lowers the chin by 4.3 cm); gaps are reported in millimetres.

Lip pairs (:data:`FACECAP_LIP_PAIRS`): the three vertex pairs where the upper lip's inner
edge meets the lower lip's in the neutral mesh, at the midline and 7.5 mm either side of it
(upper / lower vertex indices 1449 / 1413, 1453 / 1095, 1464 / 1098; x = -7.5, 0, +7.5 mm).
They were found on the neutral mesh as the nearest (< 1 mm apart) pairs of an upper-lip
vertex (moved < 3 mm by ``jawOpen``) and a lower-lip vertex (moved > 10 mm), and
:func:`load_facecap_head` checks that they still are.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError, InputNotFoundError
from ..face import ARKIT_52

__all__ = ["ArkitHead", "FACECAP_LIP_PAIRS", "default_head_path", "load_facecap_head",
           "load_head"]

#: (upper-lip vertex, lower-lip vertex) pairs of the Face Cap head, left to right.
FACECAP_LIP_PAIRS: tuple[tuple[int, int], ...] = ((1449, 1413), (1453, 1095), (1464, 1098))
#: Millimetres per Face Cap unit (centimetres).
FACECAP_MM_PER_UNIT = 10.0

_CACHE: dict[str, "ArkitHead"] = {}


@dataclass(frozen=True, eq=False)
class ArkitHead:
    """Neutral mesh, ARKit-52 morph deltas and the lip vertex pairs of a head.

    Attributes:
        neutral: float64 ``[V, 3]`` rest positions, millimetres.
        deltas: float64 ``[52, V, 3]`` morph target offsets in
            :data:`model_core.face.ARKIT_52` order, millimetres at weight 1.
        lip_pairs: int64 ``[P, 2]`` (upper-lip vertex, lower-lip vertex) pairs.
        name: where the head came from.
    """

    neutral: np.ndarray
    deltas: np.ndarray
    lip_pairs: np.ndarray
    name: str = "head"

    def lip_vertices(self, weights) -> np.ndarray:
        """The lip-pair vertices after applying blendshape weights.

        Args:
            weights: float ``[T, 52]`` ARKit-52 weights (any real values; [0, 1] expected).

        Returns:
            float64 ``[T, P, 2, 3]`` positions in millimetres.

        Raises:
            ValueError: ``weights`` not ``[T, 52]`` or not finite.
        """
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim != 2 or w.shape[1] != len(ARKIT_52):
            raise ValueError(f"weights must have shape [T, {len(ARKIT_52)}] (ARKit-52 order), "
                             f"got {w.shape}")
        if not np.all(np.isfinite(w)):
            raise ValueError("weights contain NaN or infinite values")
        idx = self.lip_pairs.reshape(-1)
        pos = self.neutral[idx][None] + np.einsum("tk,kvc->tvc", w, self.deltas[:, idx])
        return pos.reshape(len(w), *self.lip_pairs.shape, 3)

    def lip_gap(self, weights) -> np.ndarray:
        """Lip gap per frame: the mean Euclidean distance between the upper and lower vertex
        of each lip pair after applying the weights.

        Args:
            weights: float ``[T, 52]`` ARKit-52 weights.

        Returns:
            float64 ``[T]`` millimetres (about 0.2 mm at rest for the Face Cap head).

        Raises:
            ValueError: as :meth:`lip_vertices`.
        """
        v = self.lip_vertices(weights)
        return np.linalg.norm(v[:, :, 0] - v[:, :, 1], axis=-1).mean(axis=1)


def default_head_path() -> Path:
    """``<project root>/inputs/facecap/facecap.glb`` (written by ``tools/fetch_facecap.py``)."""
    return Path(__file__).resolve().parents[2] / "inputs" / "facecap" / "facecap.glb"


def _accessor(g, blob: bytes, index: int) -> np.ndarray:
    """A glTF accessor as float64 ``[count, n]`` (strided views and component types)."""
    a = g.accessors[index]
    bv = g.bufferViews[a.bufferView]
    dtype = np.dtype({5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16,
                      5125: np.uint32, 5126: np.float32}[a.componentType])
    n = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}[a.type]
    item = dtype.itemsize * n
    stride = bv.byteStride or item
    off = (bv.byteOffset or 0) + (a.byteOffset or 0)
    raw = np.frombuffer(blob, np.uint8, count=stride * (a.count - 1) + item, offset=off)
    rows = np.lib.stride_tricks.as_strided(raw, shape=(a.count, item), strides=(stride, 1))
    out = np.ascontiguousarray(rows).view(dtype).reshape(a.count, n).astype(np.float64)
    if a.normalized:
        if dtype.kind == "u":
            out /= np.iinfo(dtype).max
        else:
            out = np.maximum(out / np.iinfo(dtype).max, -1.0)
    return out


def load_facecap_head(path: str | os.PathLike | None = None) -> ArkitHead:
    """Read the Face Cap head (``tools/fetch_facecap.py``'s plain .glb) with ``pygltflib``.

    The mesh named ``head`` gives the neutral positions and the 52 morph targets (named in
    the mesh's ``extras.targetNames``, ``browDown_L``-style, mapped to ARKit-52 names with
    :func:`model_core.training.captures.arkit_name`); both are dequantized with the mesh node's
    scale and translation and converted to millimetres. Cached per path.

    Args:
        path: the .glb; None for :func:`default_head_path`.

    Returns:
        :class:`ArkitHead` with :data:`FACECAP_LIP_PAIRS`.

    Raises:
        InputNotFoundError (a FileNotFoundError): the file is missing (run
            ``tools/fetch_facecap.py``).
        ImportError: ``pygltflib`` is not installed.
        DataError (a ValueError): the file is not the Face Cap head (no ``head`` mesh with
            52 ARKit morph targets, or the lip pairs do not meet in its neutral mesh).
    """
    p = Path(path) if path is not None else default_head_path()
    key = str(p.resolve())
    if key in _CACHE:
        return _CACHE[key]
    if not p.is_file():
        raise InputNotFoundError(f"ARKit head {p} is missing: run `.venv/bin/python "
                                f"tools/fetch_facecap.py` from the project root")
    try:
        import pygltflib
    except ImportError as e:
        raise ImportError("reading the head needs pygltflib: pip install pygltflib") from e
    from ..training.captures import arkit_name

    try:
        g = pygltflib.GLTF2.load(str(p))
    except (OSError, ValueError, KeyError, TypeError, struct.error) as e:
        raise DataError(f"{p}: not a readable glTF file ({e}); is this the Face Cap head "
                        f"from tools/fetch_facecap.py?") from None
    if g is None:
        raise DataError(f"{p}: not a glTF file (.glb or .gltf); is this the Face Cap head "
                        f"from tools/fetch_facecap.py?")
    blob = g.binary_blob()
    meshes = [i for i, m in enumerate(g.meshes or []) if m.name == "head"]
    if not meshes or blob is None:
        raise DataError(f"{p}: no mesh named 'head' in a binary glTF; is this the Face Cap "
                        f"head from tools/fetch_facecap.py?")
    mesh = g.meshes[meshes[0]]
    prim = mesh.primitives[0]
    names = (mesh.extras or {}).get("targetNames") or []
    if len(names) != len(ARKIT_52) or len(prim.targets or []) != len(ARKIT_52):
        raise DataError(f"{p}: the head mesh has {len(prim.targets or [])} morph targets "
                         f"({len(names)} named); expected the 52 ARKit shapes")
    node = next((n for n in g.nodes if n.mesh == meshes[0]), None)
    scale = np.asarray(node.scale if node is not None and node.scale else [1.0, 1.0, 1.0])
    shift = np.asarray(node.translation if node is not None and node.translation
                       else [0.0, 0.0, 0.0])
    mm = FACECAP_MM_PER_UNIT
    neutral = (_accessor(g, blob, prim.attributes.POSITION) * scale + shift) * mm
    deltas = np.zeros((len(ARKIT_52), len(neutral), 3))
    for name, target in zip(names, prim.targets):
        canon = arkit_name(name)
        if canon is None:
            raise DataError(f"{p}: morph target {name!r} is not an ARKit-52 shape")
        t = target["POSITION"] if isinstance(target, dict) else target.POSITION
        deltas[ARKIT_52.index(canon)] = _accessor(g, blob, t) * scale * mm
    pairs = np.asarray(FACECAP_LIP_PAIRS, dtype=np.int64)
    if pairs.max() >= len(neutral):
        raise DataError(f"{p}: {len(neutral)} vertices; not the 2694-vertex Face Cap head")
    rest = np.linalg.norm(neutral[pairs[:, 0]] - neutral[pairs[:, 1]], axis=1)
    jaw = np.linalg.norm(deltas[ARKIT_52.index("jawOpen")], axis=1)
    if rest.max() > 1.0 or jaw[pairs[:, 0]].max() > 3.0 or jaw[pairs[:, 1]].min() < 10.0:
        raise DataError(f"{p}: vertices {FACECAP_LIP_PAIRS} are not the Face Cap head's lip "
                         f"contact pairs (rest distance {rest.round(2)} mm)")
    head = ArkitHead(neutral, deltas, pairs, name=str(p))
    _CACHE[key] = head
    return head


def load_head(path: str | os.PathLike | None = None) -> ArkitHead:
    """The head the evaluation measures lip gaps on (today: :func:`load_facecap_head`)."""
    return load_facecap_head(path)
