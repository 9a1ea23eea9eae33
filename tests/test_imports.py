"""The house's arrows, read from the source: no circular imports, and no service imports another."""

import ast

import pytest

from tests.support.services import REPO

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
    assert "store_service.storage.db" in edges["store_service.store"]


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


def layer(name):
    return name.split(".")[:2]


def test_the_store_s_arrows_run_from_http_through_the_core_to_storage():
    for name, targets in graph().items():
        if name.startswith("store_service.storage."):
            assert not {t for t in targets if t.startswith("store_service.") and layer(t) != layer(name)}, name
        if name.startswith("store_service.people."):
            assert not {t for t in targets if t.startswith(("store_service.http", "store_service.store"))}, name
        if name.startswith("store_service.") and not name.startswith("store_service.http"):
            assert not {t for t in targets if t.startswith("store_service.http")}, name


def test_the_vision_library_knows_no_service_and_no_setting():
    for name, targets in graph().items():
        if name.startswith("facerec.vision"):
            assert not {t for t in targets if not t.startswith("facerec.vision")}, name


def test_the_service_plumbing_knows_no_client_and_no_service():
    for name, targets in graph().items():
        if name.startswith("facerec.service"):
            assert not {t for t in targets if t.startswith(("facerec.cli", "facerec.run"))}, name


def imported_names(path):
    """Every module name the file at `path` imports, as written (relative imports left out)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            found.add(node.module)
    return found


def test_product_code_never_imports_the_tests():
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            assert not {m for m in imported_names(path) if m.split(".")[0] == "tests"}, path


def test_tests_never_import_another_test_module():
    """Tests share tools through tests/support/ and fixtures through conftest.py, never through each other."""
    test_modules = {p.stem for p in (REPO / "tests").glob("*.py")}
    for path in (REPO / "tests").rglob("*.py"):
        imported = imported_names(path)
        assert not {m for m in imported if m.split(".")[0] in test_modules}, path
        assert not {m for m in imported if m.startswith("tests.") and not m.startswith("tests.support")}, path


def untyped_public_functions(path):
    """The public functions and methods of the module at `path` lacking an annotation (a parameter's or
    the return's; `__init__`'s parameters count, its return does not)."""
    missing = []

    def visit(node, owner=""):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef) and not child.name.startswith("_"):
                visit(child, f"{child.name}.")
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                if child.name.startswith("_") and child.name != "__init__":
                    continue
                arguments = child.args.posonlyargs + child.args.args + child.args.kwonlyargs
                arguments += [a for a in (child.args.vararg, child.args.kwarg) if a is not None]
                untyped = [a.arg for a in arguments if a.annotation is None and a.arg not in ("self", "cls")]
                if untyped or (child.returns is None and child.name != "__init__"):
                    missing.append(f"{owner}{child.name}")

    visit(ast.parse(path.read_text()))
    return missing


def test_every_public_function_of_the_product_is_typed():
    """mypy (make test) checks the annotations against each other; this checks that they are there."""
    missing = {
        str(path.relative_to(REPO)): names
        for package in PACKAGES
        for path in (REPO / package).rglob("*.py")
        if (names := untyped_public_functions(path))
    }
    assert missing == {}


def test_an_untyped_function_is_seen(tmp_path):
    module = tmp_path / "module.py"
    module.write_text(
        "def typed(a: int) -> int:\n    return a\n\n\nclass Thing:\n    def method(self, b):\n        pass\n"
    )
    assert untyped_public_functions(module) == ["Thing.method"]
