"""The import graph keeps the layers of docs/architecture.md: no import circle among
hwbench's modules and no import that runs back up a layer. The layer of each module is
read from the doc's layer table, so the doc and the code cannot drift apart. Every
import counts: at the top of a module or inside a function (a lazy import that dodges
a circle is still a circle); imports under ``if TYPE_CHECKING:`` never run and are
left out."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import ROOT

PKG = ROOT / "hwbench"


def doc_layers() -> dict[str, int]:
    """Path (relative to hwbench/, a folder ending in /) -> its layer number, from the
    modules column of the table under "## Layers"."""
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = doc.split("## Layers", 1)[1].split("\n## ", 1)[0]
    out: dict[str, int] = {}
    for number, modules in re.findall(r"^\| (\d+) \| [^|]+ \| ([^|]+) \|", table, re.M):
        for path in re.findall(r"`([\w/.]+(?:\.py|/))`", modules):
            path = path.removeprefix("hwbench/")
            assert path not in out, f"docs/architecture.md names {path} in two layers"
            out[path] = int(number)
    return out


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def layer_of(path: Path, layers: dict[str, int]) -> int | None:
    """The layer of the longest path in ``layers`` that names ``path`` or a folder of it."""
    rel = path.relative_to(PKG).as_posix()
    hits = [k for k in layers if rel == k or (k.endswith("/") and rel.startswith(k))]
    return layers[max(hits, key=len)] if hits else None


def _type_checking_only(tree: ast.Module) -> set[int]:
    """Ids of the import nodes under ``if TYPE_CHECKING:``."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            out |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return out


def imports(name: str, path: Path) -> list[tuple[str, int]]:
    """The hwbench modules ``name`` imports, each with the line of the import."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_only(tree)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1] + [node.module or ""]).strip(".") \
                if node.level else (node.module or "")
            # "from . import x" imports module x where there is one, else a name of the package
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for t in targets:
            while t not in MODULES and "." in t:
                t = t.rsplit(".", 1)[0]
            if t in MODULES and t != name and t.split(".")[0] == "hwbench":
                out.append((t, node.lineno))
    return out


GRAPH = {name: imports(name, path) for name, path in MODULES.items()}


def test_every_module_has_a_layer_in_the_doc():
    layers = doc_layers()
    missing = [n for n, p in MODULES.items() if layer_of(p, layers) is None]
    assert not missing, f"add these to the layer table of docs/architecture.md: {missing}"


def test_no_import_runs_back_up_a_layer():
    layers = doc_layers()
    back = []
    for name, targets in GRAPH.items():
        mine = layer_of(MODULES[name], layers)
        for t, line in targets:
            theirs = layer_of(MODULES[t], layers)
            if mine is not None and theirs is not None and theirs > mine:
                back.append(f"{MODULES[name].relative_to(ROOT)}:{line} (layer {mine}) imports {t} (layer {theirs})")
    assert not back, "imports against the layers of docs/architecture.md:\n" + "\n".join(back)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one node (the circles)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

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
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_circle():
    circles = strongly_connected({n: {t for t, _ in ts} for n, ts in GRAPH.items()})
    assert not circles, f"import circles: {circles}"


def test_the_circle_finder_finds_circles():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_relative_imports_resolve_to_modules():
    by_target = {t for t, _ in GRAPH["hwbench.report.sections.headline"]}
    assert {"hwbench.report.page", "hwbench.report.sections", "hwbench.report.table"} <= by_target
    assert "hwbench.models.nets.common" in {t for t, _ in GRAPH["hwbench.models.nets.decoder"]}
