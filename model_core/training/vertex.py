"""Training data of vertex models: :class:`~model_core.vertex.datasets.VertexSequence` ->
:class:`~model_core.training.batches.Utterance` in the codec's latent space, and the
normalization / rest pose a fresh :class:`~model_core.vertex.model.VertexModel` needs before
its first step. (Training-only, so it lives here and not in :mod:`model_core.vertex`.)"""

from __future__ import annotations

import numpy as np
import torch

from .batches import Utterance, fit_normalization


def vertex_utterances(vm, sequences, unseen: str = "error") -> list[Utterance]:
    """:class:`VertexSequence` list -> training :class:`Utterance` list whose frames are
    the codec latents float32 [T, D] (style: the subject's index in ``vm.subjects``).

    Args:
        vm: the :class:`~model_core.vertex.model.VertexModel` being trained.
        sequences: VertexSequence list loaded with audio (16 kHz).
        unseen: what a subject not in ``vm.subjects`` gets: ``"error"`` (training data) or
            ``"unknown"`` (the learned unknown style, index ``n_styles``; validation data
            of held-out speakers).
    Raises:
        ValueError: a sequence without audio, or of a subject not in ``subjects`` when
        ``unseen="error"``.
    """
    out = []
    for s in sequences:
        if s.samples is None:
            raise ValueError(f"{s.name}: loaded without audio")
        if s.subject in vm.subjects:
            style = vm.subjects.index(s.subject)
        elif unseen == "unknown":
            style = vm.model.config.n_styles
        else:
            raise ValueError(f"{s.name}: subject {s.subject!r} is not a training subject "
                             f"of this model ({vm.subjects})")
        out.append(Utterance(s.samples, vm.codec.encode(s.offsets), style))
    return out


def prepare_vertex_training(vm, sequences) -> list[Utterance]:
    """Build the training utterances of ``vm`` (see :func:`vertex_utterances`), fit the
    output/feature normalization on them and set the model's rest pose to the codec latent of
    the neutral face (zero offset), which fills the history window at the start of every
    stream. Returns the utterances.

    Raises:
        ValueError: as :func:`vertex_utterances`.
    """
    utts = vertex_utterances(vm, sequences)
    fit_normalization(vm.model, utts)
    rest = vm.codec.encode(np.zeros((1, vm.n_vertices, 3), np.float32))[0]
    vm.model.net.rest_pose.copy_(torch.from_numpy(rest))
    return utts
