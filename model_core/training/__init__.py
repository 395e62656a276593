"""Training (layer 5): phone inventories and viseme tables (:mod:`.phonemes`), the procedural
ARKit-52 "teacher" (:mod:`.teacher`), speech synthesis (:mod:`.tts`, :mod:`.voices`), the
synthetic corpus (:mod:`.corpus`), face-capture takes (:mod:`.captures`), forced alignment
(:mod:`.align`), chunk batches (:mod:`.batches`), the training objective (:mod:`.objective`:
the loss, history corruption and rollouts, guidance distillation), vertex training data
(:mod:`.vertex`) and the trainer (:mod:`.trainer`). Never imported by the runtime. Import the submodules
directly; this package imports nothing heavy."""
