"""Inference backends: where the network's computations run (docs/architecture.md, "Where to
add things").

Today there is one backend, ``"torch"``: :class:`~model_core.runtime.model.StreamTalkerModel`
calls the network (:class:`~model_core.runtime.network.StreamTalkerNet`) per chunk -- the
condition predictor once (``condition`` + ``denoise_prepare``) and the diffusion head at each
DDIM step (``denoise_step``) -- inside ``sample_chunk``. Everything around those calls (front
end, scheduler, session, driver, resampling) is backend-independent numpy/torch-CPU code. A
new backend (issue 14: onnxruntime) implements those two calls, is named in
:data:`BACKENDS`, and is chosen by :func:`resolve_backend` from ``load_model(...,
backend=)``.
"""

from __future__ import annotations

#: The backends this build can run.
BACKENDS = ("torch",)


def resolve_backend(backend: str | None = None, device="cpu") -> str:
    """The backend to run a model with.

    Args:
        backend: a name from :data:`BACKENDS`, or None for the default (``"torch"``).
        device: the device the model will run on (``"cpu"``, ``"cuda"``); a future backend
            may decide by it.
    Returns:
        the backend's name.
    Raises:
        ValueError: an unknown backend, naming the ones there are.
    """
    if backend is None:
        return BACKENDS[0]
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; this StreamTalker runs "
                         f"{', '.join(BACKENDS)}")
    return backend
