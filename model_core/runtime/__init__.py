"""The inference runtime (layer 2): everything that turns samples into frames inside Blender
or a CLI. :mod:`.config` (ModelConfig, ChunkGeometry), :mod:`.features` / :mod:`.frontend`
(log-mel front end), :mod:`.network` (torch), :mod:`.ddim` (numpy DDIM sampler and noise),
:mod:`.diffusion` (torch training loss), :mod:`.session` (the streaming session,
MotionResampler), :mod:`.driver` (the Session protocol and the one push loop),
:mod:`.inference` (what both backends share), :mod:`.model` (the torch backend),
:mod:`.onnx_backend` (the onnxruntime backend), :mod:`.onnx_export` / :mod:`.onnx_files`
(exporting, export folders), :mod:`.checkpoint` (files, ``describe_checkpoint``, the one
loader), :mod:`.device` (devices, threads) and :mod:`.backends` (choosing a backend). Imports
only :mod:`model_core.face`, :mod:`model_core.errors` and :mod:`model_core.io`; see
docs/architecture.md. Import the submodules directly: this package imports nothing heavy."""
