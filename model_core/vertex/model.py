"""VertexModel: a latent model -- a :class:`~model_core.runtime.model.StreamTalkerModel`
(torch), or for inference an :class:`~model_core.runtime.onnx_backend.OnnxModel` -- tied to a
:class:`~model_core.vertex.codec.PCACodec`, so that training, streaming and whole-file
generation run unchanged in the codec's latent space and the outputs are meshes. An ONNX
export of a vertex checkpoint carries the codec as ``codec.safetensors`` in its folder.

Files: ``NAME.safetensors`` + ``NAME.json`` (the ordinary checkpoint, ``output_kind =
"latent"``, channels ``pc000``...; its ``training`` record holds ``vertex.dataset``,
``vertex.subjects`` = style order) and ``NAME.codec.safetensors`` beside them. Nothing is
ever overwritten.

Speaker conditioning is the model's style one-hot: style ``i`` = ``subjects[i]`` (the training
subjects in split order, as in StreamingTalker / FaceFormer); ``None`` is the learned
"unknown" style.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..io.audio import to_model_rate
from ..runtime.checkpoint import checkpoint_paths, codec_path
from ..runtime.config import ModelConfig
from ..runtime.driver import run
from ..runtime.inference import InferenceModel
from .codec import PCACodec

# torch (the torch backend, checkpoint files) is imported by the methods that need it, so a
# vertex model also runs on the onnx backend where torch is not installed.


class VertexSession:
    """A streaming session in vertex space: the latent session + decode + template; a
    :class:`~model_core.runtime.driver.Session` whose frames are meshes.

    ``push(samples)`` -> float32 [n_new, V, 3]; ``flush()`` -> the rest; ``latency_ms``;
    ``fps`` (the latent session's); ``channel_names`` None (frames are meshes). Same contract
    as :class:`~model_core.runtime.session.StreamingSession` (any chunking, same seed ->
    identical frames): decoding is per frame, so it cannot break it.
    """

    channel_names = None

    def __init__(self, session, codec: PCACodec, template: np.ndarray):
        self.session, self.codec, self.template = session, codec, template
        self.fps = session.fps

    @property
    def latency_ms(self) -> float:
        return self.session.latency_ms

    def _mesh(self, z: np.ndarray) -> np.ndarray:
        if len(z) == 0:
            return np.zeros((0, self.codec.n_vertices, 3), np.float32)
        return self.template[None] + self.codec.decode(z)

    def push(self, samples) -> np.ndarray:
        return self._mesh(self.session.push(samples))

    def flush(self) -> np.ndarray:
        return self._mesh(self.session.flush())


class VertexModel:
    """Speech -> vertex sequences.

    Attributes:
        model: the latent model (a StreamTalkerModel, or an OnnxModel); codec: the PCACodec;
        subjects: training subject names (style order); dataset: name or "".
    """

    def __init__(self, model: InferenceModel, codec: PCACodec,
                 subjects=(), dataset: str = ""):
        if model.config.output_kind != "latent":
            raise ValueError("a vertex model needs a latent model (output_kind='latent')")
        if model.config.dim != codec.n_components:
            raise ValueError(f"model has {model.config.dim} channels, codec "
                             f"{codec.n_components} components")
        self.model, self.codec = model, codec
        self.subjects = list(subjects)
        self.dataset = dataset

    # -- construction --------------------------------------------------------------------
    @classmethod
    def create(cls, codec: PCACodec, subjects, fps: float = 30.0, dataset: str = "",
               device="cpu", seed: int = 0, **config) -> "VertexModel":
        """A fresh (untrained) vertex model.

        Args:
            codec: a fitted codec (D = its components); subjects: training subjects, style
                order (n_styles = len(subjects)); fps: motion rate (VOCASET 30, BIWI 25);
            config: other :class:`ModelConfig` fields (history_frames, d_model, ...).
        """
        from ..runtime.model import StreamTalkerModel

        training = dict(config.pop("training", {}) or {})
        training["vertex"] = {"dataset": dataset, "subjects": list(subjects),
                              "n_vertices": codec.n_vertices,
                              "explained_variance": codec.explained_variance}
        cfg = ModelConfig(fps=fps, channel_names=codec.channel_names, output_kind="latent",
                          n_styles=max(1, len(subjects)), training=training, **config)
        return cls(StreamTalkerModel.from_config(cfg, device=device, seed=seed), codec,
                   subjects, dataset)

    @property
    def fps(self) -> float:
        return self.model.fps

    @property
    def sample_rate(self) -> int:
        """The audio rate the model takes, Hz (16 000)."""
        return self.model.sample_rate

    @property
    def n_vertices(self) -> int:
        return self.codec.n_vertices

    def style_index(self, style) -> int | None:
        """A subject name, an int index or None -> the model's style index (or None).

        Raises:
            ValueError: unknown subject name or index out of range.
        """
        if style is None or isinstance(style, (int, np.integer)) and not isinstance(style, bool):
            return None if style is None else self.model.check_style(style)
        if isinstance(style, str):
            if style in self.subjects:
                return self.subjects.index(style)
            raise ValueError(f"unknown training subject {style!r}; this model knows "
                             f"{self.subjects} (or use style=None)")
        raise ValueError(f"style must be a subject name, an index or None, got {style!r}")

    # -- inference -----------------------------------------------------------------------
    def _template(self, template) -> np.ndarray:
        t = np.asarray(template, np.float32)
        if t.size != 3 * self.n_vertices:
            raise ValueError(f"template must be [{self.n_vertices}, 3], got shape {t.shape}")
        return t.reshape(-1, 3)

    def stream(self, template, seed: int = 0, style=None, **kwargs) -> VertexSession:
        """Open a vertex streaming session. ``template``: the speaker's neutral mesh
        [V, 3] (offsets are added to it); style: subject name, index or None; other
        keywords as :meth:`StreamTalkerModel.stream`."""
        return VertexSession(self.model.stream(seed=seed, style=self.style_index(style),
                                               **kwargs), self.codec, self._template(template))

    def generate(self, audio, sample_rate: int, template, seed: int = 0, style=None,
                 **kwargs) -> np.ndarray:
        """Whole-file generation: the vertex session (:meth:`stream`) run over the audio by
        :func:`model_core.runtime.driver.run`.

        Args:
            audio: samples [N] or [N, C] at ``sample_rate`` Hz (resampled to 16 kHz with
                soxr, as :meth:`StreamTalkerModel.generate`); template: neutral mesh [V, 3];
            seed, style, keywords: as :meth:`stream`.
        Returns:
            float32 [round(duration_s * fps), V, 3].
        Raises:
            AudioError / ValueError: as :meth:`StreamTalkerModel.generate`; a template of the
            wrong size.
        """
        session = self.stream(template, seed=seed, style=style, **kwargs)
        return run(session, to_model_rate(audio, sample_rate), self.model.sample_rate)

    # -- files ---------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, half: bool = False) -> Path:
        """Write ``NAME.safetensors`` + ``NAME.json`` + ``NAME.codec.safetensors``.

        Raises:
            FileExistsError: any of the three exists (nothing is written then).
        """
        w, c = checkpoint_paths(path)
        cp = codec_path(path)
        for p in (w, c, cp):
            if p.exists():
                raise FileExistsError(f"{p} already exists; choose a new name (checkpoints "
                                      f"are never overwritten)")
        self.model.config.training.setdefault("vertex", {}).update(
            {"dataset": self.dataset, "subjects": self.subjects,
             "n_vertices": self.n_vertices, "explained_variance": self.codec.explained_variance})
        from ..runtime.checkpoint import save_checkpoint

        self.codec.save(cp)
        return save_checkpoint(self.model, path, half=half)

    @classmethod
    def load(cls, path: str | os.PathLike, device="cpu") -> "VertexModel":
        """Load a vertex checkpoint and its codec.

        Raises:
            FileNotFoundError: weights, config or ``NAME.codec.safetensors`` missing;
            CheckpointError / ValueError: as :func:`load_checkpoint`, or a codec whose size
            does not match the model.
        """
        cp = codec_path(path)
        if not cp.is_file():
            raise FileNotFoundError(f"codec not found: {cp} (a vertex checkpoint needs "
                                    f"NAME.codec.safetensors beside NAME.safetensors)")
        from ..runtime.checkpoint import load_checkpoint

        return cls.of(load_checkpoint(path, device), PCACodec.load(cp))

    @classmethod
    def of(cls, model: InferenceModel, codec: PCACodec) -> "VertexModel":
        """A latent model (either backend) and its codec, subjects and dataset taken from the
        config's ``training.vertex`` record.

        Raises:
            ValueError: not a latent model, or a codec whose size does not match it.
        """
        info = model.config.training.get("vertex", {})
        return cls(model, codec, info.get("subjects", []), info.get("dataset", ""))
