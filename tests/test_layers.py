"""The layer rule of docs/architecture.md, checked on the source (ast; nothing is imported):
every module of model_core imports only from its own layer or the layers below, and no
imports form a cycle. Function-level (lazy) imports count too: they are dependencies all the
same. Also: the Blender side defines no training code (the objective lives in
model_core.training.objective), and the add-on tells model kinds apart through
describe_checkpoint, never with ``hasattr(model, ...)``."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from importgraph import ROOT, graph, module_names

#: Layers, bottom first (docs/architecture.md). ``model_core`` itself (the package's
#: ``__init__``, key "") is the public facade on top of the Blender side: it re-exports
#: face, errors, io and runtime names and its ``load_model`` loads every model kind.
LAYERS = {"face": 0, "errors": 0, "interrupt": 0, "io": 1, "runtime": 2, "vertex": 3, "live": 4, "": 4.5,
          "training": 5, "evaluation": 6, "cli": 7}
#: What runs inside Blender (build_addon.py vendors exactly these).
BLENDER_SIDE = {"face", "errors", "interrupt", "io", "runtime", "", "vertex", "live"}


def layer_of(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_package_has_a_layer():
    unknown = sorted({layer_of(n) for n in module_names()} - set(LAYERS))
    assert not unknown, f"model_core packages without a layer in this test: {unknown}"


def test_no_import_goes_up_a_layer():
    bad = [f"{a} ({layer_of(a) or 'model_core'}) imports {b} ({layer_of(b) or 'model_core'})"
           for a, deps in graph().items() for b in sorted(deps)
           if LAYERS[layer_of(b)] > LAYERS[layer_of(a)]]
    assert not bad, "imports that go up a layer:\n" + "\n".join(bad)


def test_no_import_cycles():
    g = graph()
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def strong(v):                       # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            strong(v)
    assert not cycles, f"import cycles in model_core: {cycles}"


def test_blender_side_never_imports_training_evaluation_or_cli():
    bad = [f"{a} imports {b}" for a, deps in graph().items() if layer_of(a) in BLENDER_SIDE
           for b in sorted(deps) if layer_of(b) not in BLENDER_SIDE]
    assert not bad, "\n".join(bad)


#: Names that belong to training, not inference: the DDPM loss and forward process, history
#: corruption and rollouts, guidance distillation, optimisers.
TRAINING_NAMES = re.compile(r"(?i)loss|ddpm|rollout|corrupt|distill|optimi[sz]er|guided|"
                            r"teacher|parent_history")


def training_definitions(path: Path) -> list[str]:
    """The functions, methods and classes in ``path`` whose names are training's
    (:data:`TRAINING_NAMES`), as ``"LINE: NAME"``. (Settings such as
    ``ModelConfig.lip_loss_weight`` are data a checkpoint carries, not code: not counted.)"""
    return [f"{node.lineno}: {node.name}"
            for node in ast.walk(ast.parse(path.read_text(), str(path)))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            and TRAINING_NAMES.search(node.name)]


def test_blender_side_defines_no_training_code():
    """The inference runtime is vendored into Blender: the training objective (loss, noiser,
    history corruption, rollouts, distillation) stays in model_core.training -- and the check
    finds it there, so it is not vacuous."""
    modules = module_names()
    bad = [f"{name}:{d}" for name, p in modules.items() if layer_of(name) in BLENDER_SIDE
           for d in training_definitions(p)]
    assert not bad, "training code on the Blender side:\n" + "\n".join(bad)
    found = {d.split(": ")[1] for d in training_definitions(modules["model_core.training.objective"])}
    assert {"training_loss", "DDPMNoiser", "rollout_history", "corrupt_history",
            "guided_x0", "Distillation"} <= found


def test_the_walker_sees_imports():
    """The checks above are not vacuous: the walker finds known edges."""
    g = graph()
    assert "model_core.runtime.config" in g["model_core.runtime.model"]
    assert "model_core.face" in g["model_core.runtime.config"]
    assert "model_core.runtime.driver" in g["model_core.cli.generate"]   # a function-level import


def test_addon_has_no_hasattr_model_checks():
    """Model kinds come from describe_checkpoint (``info.kind``), not from probing the
    loaded object."""
    pat = re.compile(r"hasattr\(\s*(self\.)?model\b")
    bad = [f"{p.name}:{i}: {line.strip()}"
           for p in sorted((ROOT / "streamtalker_addon").glob("*.py"))
           for i, line in enumerate(p.read_text().splitlines(), 1) if pat.search(line)]
    assert not bad, "\n".join(bad)
