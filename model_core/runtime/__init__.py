"""The inference runtime (layer 2): everything that turns samples into frames inside Blender
or a CLI. :mod:`.config` (ModelConfig, ChunkGeometry), :mod:`.features` / :mod:`.frontend`
(log-mel front end), :mod:`.network`, :mod:`.diffusion` (noise schedule, DDIM),
:mod:`.session` (the streaming session, MotionResampler), :mod:`.driver` (the Session
protocol and the one push loop), :mod:`.model`, :mod:`.checkpoint` (files,
``describe_checkpoint``, the one loader), :mod:`.device` (devices, threads) and
:mod:`.backends` (where an inference backend plugs in). Imports only :mod:`model_core.face`,
:mod:`model_core.errors` and :mod:`model_core.io`; see docs/architecture.md. Import the
submodules directly: this package imports nothing heavy."""
