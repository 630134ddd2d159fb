"""Imports point down the layers of docs/architecture.md: no module of ``hdrbench`` imports a layer above its own.

Every ``import`` statement is read from the source (function-level imports included), so a lazy import that
runs up a layer is caught as well as a top-level one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import hdrbench

PACKAGE = Path(hdrbench.__file__).parent

#: Layer rank of each top-level module or sub-package of ``hdrbench``: a module may import its own package and any
#: package of a lower rank. The top layer (entry points, command line, benchmarks run by ``hdrbench bench``) may
#: import each other.
RANKS: dict[str, int] = {
    # Shared utilities: import only each other.
    "__init__": 0, "errors": 0, "checks": 0, "registry": 0, "paths": 0, "atomic": 0, "options": 0,
    "outputs": 0, "nativebuild": 0,
    "imaging": 1,
    "metrics": 2,
    "data": 3,
    "models": 4,
    "losses": 5,
    "train": 6,
    "evaluate": 7,
    "report": 8,
    "api": 9, "cli": 9, "__main__": 9, "commands": 9, "bench": 9,
}
TOP = 9


def _top_name(module: str) -> str | None:
    """``hdrbench.x.y`` -> ``x`` (``__init__`` for ``hdrbench`` itself); None outside the package."""
    parts = module.split(".")
    if parts[0] != "hdrbench":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``; ``from hdrbench import x`` yields ``hdrbench.x``."""
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    package = list(rel.parts[:-1])  # the package a relative import starts from (for __init__ too)
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            if base == "hdrbench":
                out += [(node.lineno, f"hdrbench.{a.name}") for a in node.names]
            else:
                out.append((node.lineno, base))
    return out


def upward_imports() -> list[str]:
    """``file:line: a -> b`` for every import of a higher layer (empty when the layering holds)."""
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        src = rel.parts[0].removesuffix(".py") if len(rel.parts) > 1 or rel.name != "__init__.py" else "__init__"
        assert src in RANKS, f"{rel}: module not placed in a layer; add it to RANKS (and to docs/architecture.md)"
        for line, module in _imports(path):
            dst = _top_name(module)
            if dst is None or dst == src:
                continue
            if dst == "__version__":
                dst = "__init__"
            assert dst in RANKS, f"{rel}:{line}: imports unknown hdrbench module {module}"
            if RANKS[dst] > RANKS[src] or (RANKS[dst] == RANKS[src] and RANKS[src] != TOP and RANKS[src] != 0):
                bad.append(f"{rel}:{line}: {src} -> {module}")
    return bad


def test_no_module_imports_a_layer_above_its_own():
    assert upward_imports() == []


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    # A lower layer importing the report layer, inside a function, is reported with its file and line.
    fake = tmp_path / "hdrbench"
    (fake / "imaging").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "imaging" / "__init__.py").write_text("")
    (fake / "imaging" / "x.py").write_text("def f():\n    from hdrbench.report import figures\n    from . import y\n")
    monkeypatch.setitem(globals(), "PACKAGE", fake)
    assert upward_imports() == ["imaging/x.py:2: imaging -> hdrbench.report"]
