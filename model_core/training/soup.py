"""Weight averaging of fine-tuned checkpoints (a "model soup").

Networks fine-tuned from one pretrained network often sit in one basin of the loss, and the
average of their weights can generalise better than any one of them to data none trained on
(here: voices and languages), at no cost when sampling: the average is one network of the
same size. The uniform soup is the method of Wortsman et al. 2022, "Model soups: averaging
weights of multiple fine-tuned models improves accuracy without increasing inference time"
(ICML 2022, arXiv 2203.05482), eq. 1: ``theta = sum_i w_i theta_i`` with ``sum_i w_i = 1``.

Only fine-tunes of one network can be averaged: checkpoints whose settings differ only where
a fine-tune's may (:func:`model_core.training.trainer.changes_network`: sampler and
training-loss settings), and whose normalization buffers (output mean/std, rest pose, log-mel
mean/std) must be equal, since they are fixed statistics, not learned weights. Whether a
soup is better is for the dev sets to say (``streamtalker evaluate``), as for any
checkpoint.
"""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path

from ..errors import CheckpointError, SettingError

__all__ = ["average_checkpoints"]

def average_checkpoints(paths: list[str | os.PathLike], out: str | os.PathLike,
                        weights: list[float] | None = None, name: str | None = None) -> Path:
    """Average the weights of fine-tuned checkpoints into a new checkpoint (a model soup).

    Wortsman et al. 2022 (arXiv 2203.05482), eq. 1: every learned tensor of the result is
    ``sum_i weights[i] * tensor_i`` (float32); buffers (normalization statistics, rest pose)
    must be equal in every checkpoint and are copied. The settings may differ only where a
    fine-tune's may (:func:`model_core.training.trainer.changes_network`). The result's
    settings and training record are the first checkpoint's, with
    ``training["averaged_from"]`` listing each ingredient (its file, its training record's
    name, its weight) and ``training["name"]`` set to ``name`` when given.

    Args:
        paths: two or more checkpoints (``.safetensors`` with their ``.json`` beside them).
        out: the new checkpoint's weights path (``.safetensors``; never overwritten).
        weights: one weight per checkpoint, each > 0, summing to 1 (within 1e-6); default
            uniform.
        name: the result's ``training["name"]`` (default: the first checkpoint's).
    Returns:
        the weights path written.
    Raises:
        SettingError: fewer than two checkpoints, or weights of the wrong count, not
            positive or not summing to 1.
        CheckpointError: checkpoints that differ in a setting that changes the network
            (named with both values) or in a buffer.
        FileNotFoundError / OutputExistsError: a missing checkpoint; ``out`` exists.
    """
    import torch

    from ..runtime.checkpoint import load_checkpoint, save_checkpoint
    from ..runtime.config import ModelConfig
    from .trainer import changes_network

    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise SettingError(f"averaging needs two or more checkpoints, got {len(paths)}")
    if weights is None:
        weights = [1.0 / len(paths)] * len(paths)
    weights = [float(w) for w in weights]
    if len(weights) != len(paths):
        raise SettingError(f"--weights: {len(weights)} weights for {len(paths)} checkpoints; "
                           f"give one per checkpoint")
    if any(not w > 0 for w in weights) or abs(sum(weights) - 1.0) > 1e-6:
        raise SettingError(f"--weights {weights}: each must be > 0 and together they must "
                           f"sum to 1 (they sum to {sum(weights):g})")

    models = [load_checkpoint(p) for p in paths]
    first = models[0]
    base_cfg = first.config
    keys = [f.name for f in fields(ModelConfig) if f.name != "training"]
    for p, m in zip(paths[1:], models[1:]):
        for key in keys:
            a, b = getattr(base_cfg, key), getattr(m.config, key)
            if changes_network(key, a, b):
                raise CheckpointError(f"{p}: {key} = {b!r} but {paths[0]} has {a!r}; only "
                                      f"fine-tunes of one network can be averaged")
    # equal settings that shape the network give equal tensor names and shapes
    learned = {k for k, _ in first.net.named_parameters()}
    states = [m.net.state_dict() for m in models]
    merged = {}
    for key, ref in states[0].items():
        if key in learned and ref.is_floating_point():
            merged[key] = sum(w * st[key].float() for w, st in zip(weights, states))
            continue
        for p, st in zip(paths[1:], states[1:]):
            if not torch.equal(st[key], ref):
                raise CheckpointError(f"{p}: buffer {key} differs from {paths[0]}'s (the "
                                      f"networks were normalised on different data); only "
                                      f"fine-tunes of one network can be averaged")
        merged[key] = ref
    first.net.load_state_dict(merged)

    training = dict(base_cfg.training)
    training["averaged_from"] = [
        {"checkpoint": p.name, "name": m.config.training.get("name"), "weight": w}
        for p, m, w in zip(paths, models, weights)]
    if name is not None:
        training["name"] = name
    first.config.training = training
    return save_checkpoint(first, out)

