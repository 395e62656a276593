"""Fixtures for the Blender add-on tests (headless, the PyPI ``bpy`` module in-process).

Missing prerequisites fail the tests with the command that fixes them (never a skip):
``bpy`` (tools/setup.sh installs it), the decoded Face Cap head
(``tools/fetch_facecap.py``) and the LibriVox clips (``tools/fetch_inputs.py``).
Timers never fire in the ``bpy`` module: tests pump ``streamtalker_addon.jobs.drain``.
The root conftest's ``toy_checkpoint`` is the model. All of them are ``slow`` (the tier
``pytest -m "not slow"`` leaves out).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bl_helpers import add_strip, import_bpy, import_facecap, speech_path


_exit_status = None


def pytest_collection_modifyitems(config, items):
    """Every test of tests/blender is in the slow tier (``pytest -m "not slow"`` leaves the
    Blender tests out; tools/test.sh runs them)."""
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.slow)


def pytest_sessionfinish(session, exitstatus):
    global _exit_status
    _exit_status = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """After pytest is done: end the process without the static destructors where the
    ``bpy`` module can hang at exit (4.5; ``streamtalker_addon.compat.EXIT_MAY_HANG``)."""
    import sys
    if "bpy" in sys.modules and _exit_status is not None:
        from streamtalker_addon import compat
        if compat.EXIT_MAY_HANG:
            compat.exit_process(_exit_status)


@pytest.fixture(scope="session")
def bpy_mod():
    """The ``bpy`` module with the add-on registered (unregistered at the end)."""
    bpy = import_bpy()
    import streamtalker_addon
    if not hasattr(bpy.types.Scene, "streamtalker"):
        streamtalker_addon.register()
    yield bpy
    if hasattr(bpy.types.Scene, "streamtalker"):
        streamtalker_addon.unregister()


@pytest.fixture
def empty_scene(bpy_mod):
    """A fresh empty file (factory settings); any running job cancelled after the test."""
    from streamtalker_addon import jobs
    jobs.cancel_active()
    bpy_mod.ops.wm.read_factory_settings(use_empty=True)
    yield bpy_mod.context.scene
    jobs.shutdown()


@pytest.fixture
def facecap_scene(empty_scene, bpy_mod, toy_checkpoint):
    """(scene, head, strip): the real Face Cap head (active) and a real LibriVox clip as
    sound strip 'speech' starting at frame 10, trimmed by 8 frames at the start and 20 at
    the end; the scene at 29.97 fps; the toy checkpoint chosen in the panel, seed 3; an undo
    step holding this state."""
    bpy = bpy_mod
    scene = empty_scene
    scene.render.fps, scene.render.fps_base = 30, 1.001
    head = import_facecap(bpy)
    bpy.context.view_layer.objects.active = head
    strip = add_strip(scene, "speech", speech_path(), 10, offset_start=8, offset_end=20)
    s = scene.streamtalker
    s.model_source = "FILE"
    s.checkpoint = str(toy_checkpoint)
    s.seed = 3
    bpy.context.view_layer.update()
    bpy.ops.ed.undo_push(message="test setup")
    return scene, head, strip
