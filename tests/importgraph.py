"""The import graph of model_core, read from the source (ast; nothing is imported): which
model_core modules each module imports, at module level or inside functions alike. The layer
rule (tests/test_layers.py) checks it; the test checkpoints' cache key (tests/toy.py) hashes
the sources it reaches."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "model_core"


def module_names() -> dict[str, Path]:
    """{dotted module name: source path} of every module of model_core (a package by its
    ``__init__.py``, named as the package)."""
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def imports_of(name: str, path: Path, modules: dict) -> set[str]:
    """The model_core modules ``name`` (file ``path``) imports, resolved to module names
    (keys of ``modules``, :func:`module_names`)."""
    is_pkg = path.name == "__init__.py"
    here = name.split(".") if is_pkg else name.split(".")[:-1]
    deps = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
            deps.update(t for t in targets if t.split(".")[0] == "model_core")
            continue
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = here[:len(here) - (node.level - 1)]
            mod = ".".join(base + ([node.module] if node.module else []))
        else:
            mod = node.module or ""
        if mod.split(".")[0] != "model_core":
            continue
        subs = [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in modules]
        deps.update(subs)
        if len(subs) < len(node.names):
            deps.add(mod)
    return {d for d in deps if d in modules and d != name}


def graph() -> dict[str, set[str]]:
    """{module: the model_core modules it imports} for every module of model_core."""
    modules = module_names()
    return {n: imports_of(n, p, modules) for n, p in modules.items()}


def closure(roots) -> set[str]:
    """The modules ``roots`` (dotted names) reach through imports, themselves included, and
    the packages above each (``model_core.a.b`` runs ``model_core/__init__.py`` and
    ``model_core/a/__init__.py`` first).

    Raises:
        KeyError: a root that is not a module of model_core.
    """
    g = graph()
    missing = [r for r in roots if r not in g]
    if missing:
        raise KeyError(f"not modules of model_core: {missing}")
    todo, seen = list(roots), set()
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        parts = m.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in g]
        todo += sorted(g[m])
    return seen
