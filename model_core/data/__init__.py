"""Training-data helpers: phone inventories and viseme tables (:mod:`.phonemes`) and the
procedural ARKit-52 "teacher" that turns phone timings into blendshape curves
(:mod:`.teacher`). Import the submodules directly; this package imports nothing heavy."""
