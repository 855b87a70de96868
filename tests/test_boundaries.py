"""Package boundaries (DEVELOPERS.md): `hub` never imports `protocols`, and no import cycle spans both."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Every static import (top level or inside a function) between modules of hub and protocols."""
    modules = {_module(p): p for pkg in ("hub", "protocols") for p in (ROOT / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[set[str]] = []
    sys.setrecursionlimit(10000)

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_hub_never_imports_protocols():
    graph = import_graph()
    offenders = {m: sorted(t for t in targets if t.startswith("protocols")) for m, targets in graph.items()
                 if m.startswith("hub") and any(t.startswith("protocols") for t in targets)}
    assert offenders == {}


def test_no_import_cycle_spans_hub_and_protocols():
    spanning = [sorted(c) for c in cycles(import_graph())
                if any(m.startswith("hub") for m in c) and any(m.startswith("protocols") for m in c)]
    assert spanning == []


def test_importing_hub_loads_no_protocol_and_keeps_its_api():
    code = ("import sys, hub; assert not [m for m in sys.modules if m.startswith('protocols')], 'protocols loaded'; "
            "from hub import run, serve, open_hub, Settings, __version__; "
            "assert run.__module__ == 'protocols.jsonrpc.client', run.__module__; print(__version__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == __import__("hub").__version__
