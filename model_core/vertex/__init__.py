"""Vertex-space models (VOCASET / BIWI): data loaders, a PCA motion codec and a wrapper that
runs the ordinary latent :class:`~model_core.runtime.model.StreamTalkerModel` and its streaming
session in vertex space. Never imports ``bpy``.

Public API::

    from model_core.vertex import (load_split, load_templates, load_region, PCACodec,
                                   VertexModel, VOCASET, BIWI)
    seqs = load_split("data/vocaset", "vocaset", "train")       # [VertexSequence]
    codec = PCACodec.fit([s.offsets for s in seqs], n_components=128)
    vm = VertexModel.create(codec, subjects=VOCASET.train_subjects)
    prepare_vertex_training(vm, seqs)    # model_core.training.vertex: normalization + rest pose
    verts = vm.generate(samples, 16000, template, style="FaceTalk_170728_03272_TA")  # [T, V, 3]
    vm.save("runs/vocaset/final.safetensors")   # + .json + .codec.safetensors
"""

from .codec import PCACodec
from .datasets import (BIWI, DATASETS, VOCASET, DatasetSpec, VertexSequence, list_sequences,
                       load_region, load_split, load_templates, parse_name)
from .model import VertexModel, VertexSession, codec_path

__all__ = ["BIWI", "DATASETS", "VOCASET", "DatasetSpec", "PCACodec", "VertexModel",
           "VertexSequence", "VertexSession", "codec_path", "list_sequences", "load_region",
           "load_split", "load_templates", "parse_name"]
