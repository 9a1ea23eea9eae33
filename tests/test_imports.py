"""The house's arrows, read from the source: no circular imports, and no service imports another."""

import ast

import pytest
from conftest import REPO

PACKAGES = sorted(p.parent.name for p in REPO.glob("*/__init__.py") if p.parent.name not in ("tests", "bench"))
SERVICES = [p for p in PACKAGES if p.endswith("_service")]


def module_name(path):
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path):
    """The product modules that the module at `path` imports, anywhere in it (a function's import too)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from . import views`
    # A package is imported before its modules, always: an edge to one's own package says nothing.
    return {m for m in found if m.split(".")[0] in PACKAGES and not name.startswith(m + ".")}


def graph():
    modules = {module_name(p): p for package in PACKAGES for p in (REPO / package).rglob("*.py")}
    return {name: {m for m in imports(path) if m in modules and m != name} for name, path in modules.items()}


def cycles(edges):
    """Every strongly connected group of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_the_packages_and_their_imports():
    edges = graph()
    assert {"facerec", "detect_service", "store_service"} <= set(PACKAGES)
    assert "store_service.db" in edges["store_service.store"]


def test_no_module_imports_itself_through_others():
    assert cycles(graph()) == []


def test_a_cycle_is_seen():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_no_other_service(service):
    others = set(SERVICES) - {service}
    for name, targets in graph().items():
        if name.split(".")[0] == service:
            assert not {t for t in targets if t.split(".")[0] in others}, name


def test_the_shared_package_imports_no_service():
    for name, targets in graph().items():
        if name.split(".")[0] == "facerec":
            assert not {t for t in targets if t.split(".")[0] in SERVICES}, name


def test_the_store_database_layer_knows_nothing_above_it():
    above = {
        "store_service.store",
        "store_service.people",
        "store_service.corrections",
        "store_service.views",
        "store_service.people_views",
    }
    assert not graph()["store_service.db"] & above
