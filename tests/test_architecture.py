"""The code's shape, checked: no import circles between the project's modules, ``embeddings``
never reaching up into ``rag``, and no module using another module's underscore names. Every
import statement counts (top level, inside functions, and under TYPE_CHECKING), since a lazy
import in a circle still ties two modules together."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGES = ("rag", "embeddings", "ui", "eval")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _imports(modules: dict[str, Path]) -> dict[str, list[tuple[str, list[str]]]]:
    """For each module, the project modules it imports and the names it takes from each.
    ``from package import submodule`` is an import of the submodule; a package's ``__init__``
    counts only when a name it defines is taken from it (it runs first either way)."""
    edges: dict[str, list[tuple[str, list[str]]]] = {}
    for name, path in modules.items():
        found: list[tuple[str, list[str]]] = []
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found += [(alias.name, []) for alias in node.names if alias.name in modules]
            elif isinstance(node, ast.ImportFrom) and node.module in modules and node.level == 0:
                names = [alias.name for alias in node.names]
                submodules = [n for n in names if f"{node.module}.{n}" in modules]
                found += [(f"{node.module}.{n}", []) for n in submodules]
                if len(submodules) < len(names):
                    found.append((node.module, [n for n in names if n not in submodules]))
        edges[name] = [(target, taken) for target, taken in found if target != name]
    return edges


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_no_module_imports_itself_back_through_others() -> None:
    edges = _imports(_modules())
    graph = {name: {target for target, _ in found} for name, found in edges.items()}
    assert _circles(graph) == []


def test_the_circle_finder_finds_a_circle() -> None:
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _circles({"a": {"b"}, "b": set()}) == []


def test_embeddings_never_imports_rag_ui_or_eval() -> None:
    edges = _imports(_modules())
    upward = [(name, target) for name, found in edges.items() if name.startswith("embeddings")
              for target, _ in found if not target.startswith("embeddings")]  # fmt: skip
    assert upward == []


def test_no_module_takes_another_modules_underscore_names() -> None:
    edges = _imports(_modules())
    private = [(name, target, taken) for name, found in edges.items() for target, names in found
               for taken in names if taken.startswith("_") and not taken.startswith("__")]  # fmt: skip
    assert private == []


# The pipeline's stages, lowest first. A module imports from its own stage and the ones below
# it, never from a later one: storage knows nothing of ingest, search nothing of answering,
# and only the facade (rag.api over rag.parts) and the front ends see every stage.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("embeddings",),
    ("rag.types", "rag.config", "rag.wording"),
    ("rag.storage",),
    ("rag.ingest",),
    ("rag.search",),
    ("rag.answering",),
    ("rag.chat",),
    ("rag.parts", "rag.api", "rag"),
    ("ui", "eval"),
    ("rag.cli",),
)


def _layer(module: str) -> int | None:
    """The stage of a module: the longest entry of LAYERS that is it or a package holding it
    (``rag`` itself counts only as the package's ``__init__``, not as every module under it)."""
    best: tuple[int, int] | None = None
    for level, entries in enumerate(LAYERS):
        for entry in entries:
            holds = module == entry or (entry != "rag" and module.startswith(entry + "."))
            if holds and (best is None or len(entry) > best[1]):
                best = (level, len(entry))
    return None if best is None else best[0]


def test_every_module_belongs_to_a_stage() -> None:
    assert [name for name in _modules() if _layer(name) is None] == []


def test_imports_run_down_the_stages_never_up() -> None:
    edges = _imports(_modules())
    upward = [
        (name, target)
        for name, found in edges.items()
        for target, _ in found
        if (_layer(target) or 0) > (_layer(name) or 0)
    ]
    assert upward == []


def test_the_stage_check_places_modules_by_their_package() -> None:
    assert (_layer("rag.storage.store"), _layer("rag.ingest.indexer"), _layer("rag.search.retrieval")) == (2, 3, 4)
    assert (_layer("rag"), _layer("ui.app"), _layer("rag.cli.console")) == (7, 8, 9)
    assert _layer("ragged.thing") is None  # a prefix of a name is not its package
