"""StreamTalker Blender extension (``streamtalker_addon``): lip-sync a head mesh's shape
keys from a sound strip, in the background, with the StreamTalker model.

The Blender layer stays thin and calls :mod:`model_core` (vendored inside the installed
extension, or the project's top-level package in a checkout, see :mod:`.core`) for
everything else. Modules, by responsibility (docs/architecture.md, "The Blender add-on"):

* Blender classes: :mod:`.properties`, :mod:`.preferences`, :mod:`.operators`,
  :mod:`.panels`;
* :mod:`.planning` (what to generate: source, target, mapping, frame range, model
  settings), :mod:`.jobs` (the one job manager: registry, timer, drain), :mod:`.worker`
  (generate jobs), :mod:`.live` (Live jobs);
* :mod:`.audio_source` (strips and files -> samples), :mod:`.keyframes` (the action
  writer), :mod:`.mapping` (channel -> shape key, presets; no bpy), :mod:`.compat` (every
  Blender-version difference), :mod:`.core` (model_core access, model cache),
  :mod:`.errors`, :mod:`.bake` (batch bake CLI).

Its Python dependencies come as wheels bundled in the extension zip (build_addon.py);
nothing is installed or downloaded at run time.

Importing this package does not import ``bpy``; :func:`register` does. :func:`unregister`
cancels a running generation and leaves no handler or timer behind.
"""

from __future__ import annotations

_MODULES = ("properties", "preferences", "operators", "panels")


def _modules():
    import importlib
    return [importlib.import_module(f"{__name__}.{m}") for m in _MODULES]


def _make_load_pre():
    import bpy

    @bpy.app.handlers.persistent
    def streamtalker_load_pre(*_args):
        """A file is being loaded: the running job's data is about to vanish; cancel it."""
        from . import jobs
        jobs.cancel_active()

    return streamtalker_load_pre


_handler = None


def register() -> None:
    """Register the add-on's classes, properties and its load_pre handler."""
    import bpy
    global _handler
    for m in _modules():
        m.register()
    if _handler is None:
        _handler = _make_load_pre()
    if _handler not in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.append(_handler)


def unregister() -> None:
    """Cancel a running generation, remove the timer and handler, unregister classes."""
    import bpy
    from . import core, jobs
    jobs.shutdown()
    if bpy.app.timers.is_registered(jobs.drain):
        bpy.app.timers.unregister(jobs.drain)
    while _handler is not None and _handler in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_handler)
    for m in reversed(_modules()):
        m.unregister()
    core.clear_cache()
