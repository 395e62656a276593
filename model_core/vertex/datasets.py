"""Loaders for VOCASET and BIWI in the public on-disk layout of FaceFormer / CodeTalker /
StreamingTalker, and their standard speaker splits.

Layout (``DATA`` is the folder the user gives)::

    DATA/vertices_npy/<Subject>_<sentenceNN>.npy   float [T_src, V*3] vertex positions
    DATA/wav/<Subject>_<sentenceNN>.wav            speech (any rate; resampled to 16 kHz)
    DATA/templates.pkl                             pickle {subject: [V, 3] neutral mesh}

* VOCASET (Cudeiro et al., CVPR 2019, FLAME topology, V = 5023, metres): ``vertices_npy``
  holds 60 fps sequences; every second frame is kept (``[::2]``) giving **30 fps**, as
  FaceFormer's ``data_loader.py`` does. Names look like ``FaceTalk_170725_00137_TA_sentence01``.
* BIWI (Fanelli et al. 2010, as processed by FaceFormer, V = 23370, millimetres): **25 fps**,
  not subsampled. Names look like ``F2_e01`` / ``M3_e37``.

The subject of a file is its stem without the last ``_``-separated part, and the sentence
number is the stem's last two characters as an integer (FaceFormer:
``subject_id = "_".join(key.split("_")[:-1])``, ``sentence_id = int(key.split(".")[0][-2:])``).

Splits (source: FaceFormer, Fan et al. CVPR 2022, ``main.py`` defaults and
``data_loader.py``: ``splits = {'vocaset': {'train': range(1, 41), 'val': range(21, 41),
'test': range(21, 41)}, 'BIWI': {'train': range(1, 33), 'val': range(33, 37),
'test': range(37, 41)}}``; CodeTalker and StreamingTalker reuse them):

* VOCASET: train = 8 subjects x sentences 1-40; val = 2 other subjects x 21-40; test =
  2 other subjects x 21-40. We keep FaceFormer's choice of 21-40 for val/test (the first 20
  sentences of VOCASET are shared by all speakers; 21-40 are speaker-specific).
* BIWI: train = F2 F3 F4 M3 M4 M5 x 1-32; val = same subjects x 33-36; Test-A (``test_a``)
  = same subjects x 37-40; Test-B (``test_b``) = F1 F5 F6 F7 F8 M1 M2 M6 x 37-40
  (``test`` is an alias of ``test_a``).

Speaker style index = position of the subject in ``train_subjects`` (split order); other
subjects get ``style=None`` (the model's learned "unknown" style).

Region index files (:func:`load_region`) come from a user-given path and are never shipped:
BIWI ``regions/lve.txt`` / ``fdd.txt`` (whitespace-separated integer vertex indices) or
VOCASET ``FLAME_masks.pkl`` (pickle dict ``{'lips': int array, 'forehead': ..., 'eye_region':
..., ...}``).
"""

from __future__ import annotations

import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..face import frame_samples, sample_frames
from ..io.audio import MODEL_SAMPLE_RATE, load_audio
from ..errors import DataError, InputNotFoundError, SettingError


@dataclass(frozen=True)
class DatasetSpec:
    """A data set's rates, size and splits.

    name: ``"vocaset"`` or ``"biwi"``; fps: motion rate after subsampling (frames/s);
    stride: keep every ``stride``-th stored frame; n_vertices: V; units: mesh units;
    train_subjects: style order; splits: {split: (subjects, sentence numbers)}.
    """

    name: str
    fps: float
    stride: int
    n_vertices: int
    units: str
    train_subjects: tuple[str, ...]
    splits: dict = field(default_factory=dict)


_VOCA_TRAIN = ("FaceTalk_170728_03272_TA", "FaceTalk_170904_00128_TA", "FaceTalk_170725_00137_TA",
               "FaceTalk_170915_00223_TA", "FaceTalk_170811_03274_TA", "FaceTalk_170913_03279_TA",
               "FaceTalk_170904_03276_TA", "FaceTalk_170912_03278_TA")
_VOCA_VAL = ("FaceTalk_170811_03275_TA", "FaceTalk_170908_03277_TA")
_VOCA_TEST = ("FaceTalk_170809_00138_TA", "FaceTalk_170731_00024_TA")

VOCASET = DatasetSpec(
    "vocaset", 30.0, 2, 5023, "metres", _VOCA_TRAIN,
    {"train": (_VOCA_TRAIN, tuple(range(1, 41))),
     "val": (_VOCA_VAL, tuple(range(21, 41))),
     "test": (_VOCA_TEST, tuple(range(21, 41)))})

_BIWI_TRAIN = ("F2", "F3", "F4", "M3", "M4", "M5")
_BIWI_TEST_B = ("F1", "F5", "F6", "F7", "F8", "M1", "M2", "M6")

BIWI = DatasetSpec(
    "biwi", 25.0, 1, 23370, "millimetres", _BIWI_TRAIN,
    {"train": (_BIWI_TRAIN, tuple(range(1, 33))),
     "val": (_BIWI_TRAIN, tuple(range(33, 37))),
     "test_a": (_BIWI_TRAIN, tuple(range(37, 41))),
     "test": (_BIWI_TRAIN, tuple(range(37, 41))),
     "test_b": (_BIWI_TEST_B, tuple(range(37, 41)))})

DATASETS = {"vocaset": VOCASET, "biwi": BIWI}


def get_spec(dataset) -> DatasetSpec:
    """``"vocaset"`` / ``"biwi"`` (any case) or a DatasetSpec -> DatasetSpec (ValueError else)."""
    if isinstance(dataset, DatasetSpec):
        return dataset
    spec = DATASETS.get(str(dataset).lower())
    if spec is None:
        raise SettingError(f"unknown dataset {dataset!r}; use one of {sorted(DATASETS)}")
    return spec


@dataclass
class VertexSequence:
    """One utterance of a vertex data set.

    name: file stem (``FaceTalk_170725_00137_TA_sentence01``); subject; sentence (int);
    vertices: float32 [T, V, 3] at ``fps`` (native units); template: float32 [V, 3];
    samples: float32 [N] mono 16 kHz speech (None when loaded without audio);
    fps: frames/s; style: training-speaker index, or None for a subject not in training.
    T and N agree: T == round(N / 16000 * fps) (see :func:`load_split`).
    """

    name: str
    subject: str
    sentence: int
    vertices: np.ndarray
    template: np.ndarray
    samples: np.ndarray | None
    fps: float
    style: int | None

    @property
    def offsets(self) -> np.ndarray:
        """float32 [T, V, 3]: vertices minus the template."""
        return self.vertices - self.template[None]


_SENT = re.compile(r"(\d{2})$")


def parse_name(stem: str) -> tuple[str, int]:
    """File stem -> (subject, sentence number), FaceFormer's rule (see module docstring).

    Raises:
        ValueError: no ``_`` in the stem or no two trailing digits.
    """
    if "_" not in stem:
        raise DataError(f"{stem!r}: expected <Subject>_<sentenceNN>")
    m = _SENT.search(stem)
    if not m:
        raise DataError(f"{stem!r}: expected a two-digit sentence number at the end")
    return "_".join(stem.split("_")[:-1]), int(m.group(1))


def load_templates(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read ``templates.pkl``: a pickle dict subject -> [V, 3] (or [V*3]) array, written by
    Python 2 in the public releases (hence ``encoding='latin1'``).

    Returns:
        {subject: float32 [V, 3]}.
    Raises:
        FileNotFoundError: missing file; ValueError: not a dict of arrays of 3V numbers.
    """
    p = Path(path)
    if not p.is_file():
        raise InputNotFoundError(f"templates file not found: {p}")
    with open(p, "rb") as f:
        try:
            d = pickle.load(f, encoding="latin1")
        except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
            raise DataError(f"{p}: not a readable pickle ({e})") from None
    if not isinstance(d, dict):
        raise DataError(f"{p}: expected a dict subject -> template, got {type(d).__name__}")
    out = {}
    for k, v in d.items():
        a = np.asarray(v, dtype=np.float32)
        if a.size % 3 or a.size == 0:
            raise DataError(f"{p}: template of {k!r} has {a.size} numbers, not 3 x V")
        out[str(k)] = a.reshape(-1, 3)
    return out


def list_sequences(root: str | os.PathLike, dataset, split: str | None = None,
                   subjects=None, sentences=None) -> list[tuple[str, str, int]]:
    """(stem, subject, sentence) of the sequences present in ``root/vertices_npy`` (and in
    ``root/wav``) that belong to a split, sorted by stem.

    Args:
        root: the data folder; dataset: ``"vocaset"`` / ``"biwi"``;
        split: a split name of the dataset (``train``, ``val``, ``test``; BIWI also
            ``test_a``, ``test_b``), or None with explicit ``subjects`` / ``sentences``;
        subjects, sentences: override the split's subject list / sentence numbers.
    Raises:
        FileNotFoundError: no ``vertices_npy`` folder; ValueError: unknown split.
    """
    spec = get_spec(dataset)
    root = Path(root)
    vdir = root / "vertices_npy"
    if not vdir.is_dir():
        raise InputNotFoundError(f"{vdir}: no vertices_npy folder (expected the FaceFormer "
                                f"layout DATA/vertices_npy, DATA/wav, DATA/templates.pkl)")
    if split is not None:
        if split not in spec.splits:
            raise SettingError(f"unknown split {split!r} for {spec.name}; use one of "
                             f"{sorted(spec.splits)}")
        subj, sent = spec.splits[split]
    else:
        subj, sent = None, None
    subj = set(subjects) if subjects is not None else (set(subj) if subj is not None else None)
    sent = set(sentences) if sentences is not None else (set(sent) if sent is not None else None)
    out = []
    for f in sorted(vdir.glob("*.npy")):
        try:
            s, n = parse_name(f.stem)
        except ValueError:
            continue
        if (subj is None or s in subj) and (sent is None or n in sent):
            out.append((f.stem, s, n))
    return out


def _align(vertices: np.ndarray, samples: np.ndarray, fps: float):
    """Make T == round(N / 16000 * fps) (:func:`model_core.face.sample_frames`): trim the
    longer of the two (datasets differ by a few frames between audio and capture)."""
    T = vertices.shape[0]
    T_audio = sample_frames(len(samples), MODEL_SAMPLE_RATE, fps)
    if T > T_audio:
        vertices = vertices[:T_audio]
    elif T < T_audio:
        samples = samples[:frame_samples(T, MODEL_SAMPLE_RATE, fps)]
    return vertices, samples


def load_split(root: str | os.PathLike, dataset, split: str | None = "train", *,
               subjects=None, sentences=None, with_audio: bool = True,
               templates: dict | None = None, max_sequences: int | None = None
               ) -> list[VertexSequence]:
    """Load a split into memory.

    Vertices are read with ``np.load``, subsampled by the dataset's stride (VOCASET 60 -> 30
    fps) and reshaped to [T, V, 3] float32. With audio, the wav is read at 16 kHz mono and the
    longer of audio / motion is trimmed so that ``T == round(N / 16000 * fps)`` (what the
    training batcher expects); without audio, ``samples`` is None and nothing is trimmed.

    Args:
        root: the data folder; dataset: ``"vocaset"`` / ``"biwi"``; split: see
            :func:`list_sequences`; subjects / sentences: overrides;
        with_audio: read ``wav/<stem>.wav``; templates: preloaded templates (else
            ``root/templates.pkl``); max_sequences: keep only the first n (tests, smoke runs).
    Returns:
        list of :class:`VertexSequence`, sorted by name.
    Raises:
        FileNotFoundError: missing folder, wav or templates file; ValueError: a sequence
            whose size is not a multiple of 3 x V of its template, a subject without
            template, or no sequences at all.
    """
    spec = get_spec(dataset)
    root = Path(root)
    items = list_sequences(root, spec, split, subjects, sentences)
    if max_sequences is not None:
        items = items[:max_sequences]
    if not items:
        raise DataError(f"{root}: no {spec.name} sequences for split {split!r}")
    tpls = templates if templates is not None else load_templates(root / "templates.pkl")
    style_of = {s: i for i, s in enumerate(spec.train_subjects)}
    out = []
    for stem, subj, sent in items:
        if subj not in tpls:
            raise DataError(f"{root / 'templates.pkl'}: no template for subject {subj!r}")
        tpl = np.asarray(tpls[subj], np.float32).reshape(-1, 3)
        v = np.load(root / "vertices_npy" / f"{stem}.npy", allow_pickle=True)
        v = np.asarray(v, np.float32)
        if v.ndim < 2 or v[0].size != tpl.size:
            raise DataError(f"{stem}.npy: shape {v.shape} does not match the template of "
                             f"{subj} ({tpl.shape[0]} vertices x 3 per frame)")
        v = v.reshape(v.shape[0], -1, 3)[::spec.stride]
        samples = None
        if with_audio:
            wav = root / "wav" / f"{stem}.wav"
            if not wav.is_file():
                raise InputNotFoundError(f"{wav}: missing audio for {stem}")
            samples = load_audio(wav)
            v, samples = _align(v, samples, spec.fps)
        out.append(VertexSequence(stem, subj, sent, np.ascontiguousarray(v), tpl, samples,
                                  spec.fps, style_of.get(subj)))
    return out


def load_region(path: str | os.PathLike, keys=None, n_vertices: int | None = None) -> np.ndarray:
    """Vertex indices of a face region from a user-given file.

    * ``.txt`` (BIWI ``regions/lve.txt``, ``fdd.txt``): whitespace- or comma-separated
      integer indices.
    * ``.pkl`` (VOCASET ``FLAME_masks.pkl``, latin1 pickle dict of index arrays): the union
      of ``keys`` (a name, a list, or a ``"forehead+eye_region"`` string); required.
    * ``.npy``: an integer index array or a boolean mask.

    Args:
        n_vertices: when given, indices are checked to lie in 0..n_vertices-1.
    Returns:
        int64 [k] sorted unique indices.
    Raises:
        FileNotFoundError; ValueError: empty, non-integer or out-of-range indices, missing
        keys.
    """
    p = Path(path)
    if not p.is_file():
        raise InputNotFoundError(f"region file not found: {p}")
    if p.suffix == ".pkl":
        with open(p, "rb") as f:
            d = pickle.load(f, encoding="latin1")
        if not isinstance(d, dict):
            raise DataError(f"{p}: expected a dict of index arrays")
        if keys is None:
            raise DataError(f"{p}: name the region(s) to use, one of {sorted(map(str, d))}")
        if isinstance(keys, str):
            keys = [k for k in re.split(r"[+,]", keys) if k]
        missing = [k for k in keys if k not in d]
        if missing:
            raise DataError(f"{p}: no region(s) {missing}; has {sorted(map(str, d))}")
        a = np.concatenate([np.asarray(d[k]).ravel() for k in keys])
    elif p.suffix == ".npy":
        a = np.load(p)
        if a.dtype == bool:
            a = np.flatnonzero(a)
    else:
        text = p.read_text().replace(",", " ").split()
        try:
            a = np.array([float(t) for t in text])
        except ValueError:
            raise DataError(f"{p}: expected whitespace-separated integer indices") from None
    a = np.asarray(a)
    if a.size == 0:
        raise DataError(f"{p}: no indices")
    if not np.all(a == np.round(a)):
        raise DataError(f"{p}: indices must be integers")
    a = np.unique(a.astype(np.int64))
    if a.min() < 0 or (n_vertices is not None and a.max() >= n_vertices):
        raise DataError(f"{p}: indices outside 0..{(n_vertices or 0) - 1}")
    return a
