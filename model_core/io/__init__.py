"""File and sample I/O (layer 1, above :mod:`model_core.face`): audio decoding, mono mixing
and the one resampling path to the model rate (:mod:`.audio`), frame writers
(:mod:`.frames`: npz/csv/json), point caches (:mod:`.pointcache`) and atomic file writing
(:mod:`.files`). No torch. Import the submodules directly."""
