"""The import graph is the architecture (docs/architecture.md#layers): no circle between modules, no import up
the layers, no import of another module's private name, and inside a function only an entry point's imports or an
optional extra's. Read from the source with `ast`, imports at the top of a module and inside functions alike."""

from __future__ import annotations

import ast
import fnmatch
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "distill"

@dataclass(frozen=True)
class Import:
    importer: str  # distill.x.y
    module: str  # the module it loads: distill.a.b, or a package outside distill (torch)
    name: str | None  # `from module import name`: the name, when it is not a module itself
    in_function: bool
    where: str  # file:line

    def __str__(self) -> str:
        target = f"{self.module}.{self.name}" if self.name else self.module
        return f"{self.importer} -> {target} ({self.where})"


def module_name(file: Path) -> str:
    parts = file.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(file: Path, modules: set[str]) -> list[Import]:
    """Every import statement in `file`, each resolved to the module it loads."""
    importer = module_name(file)
    tree = ast.parse(file.read_text(encoding="utf-8"))
    package = importer if file.name == "__init__.py" else importer.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            where = f"{file.relative_to(ROOT)}:{getattr(child, 'lineno', '?')}"
            if isinstance(child, ast.Import):
                found.extend(Import(importer, alias.name, None, inside, where) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:  # relative: from its package, one level up a dot
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(anchor + ([child.module] if child.module else []))
                for alias in child.names:
                    submodule = f"{base}.{alias.name}"
                    if submodule in modules:
                        found.append(Import(importer, submodule, None, inside, where))
                    else:
                        found.append(Import(importer, base, alias.name, inside, where))
            visit(child, inside)

    visit(tree, False)
    return found


def all_imports() -> tuple[set[str], list[Import]]:
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(file) for file in files}
    return modules, [found for file in files for found in imports_of(file, modules)]


def internal(found: Import) -> bool:
    return found.module == "distill" or found.module.startswith("distill.")


# --- the layers, as docs/architecture.md lists them ------------------------------------------------------------

def layers() -> list[list[str]]:
    """The names of each layer, lowest first, from the numbered list between the page's layer markers."""
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = page.partition("<!-- layers: start -->")[2].partition("<!-- layers: end -->")[0]
    items = re.split(r"^\d+\. ", block, flags=re.MULTILINE)[1:]
    return [re.findall(r"`([\w.*]+)`", item.partition(":")[0]) for item in items]


def layer_of(module: str, order: list[list[str]]) -> int:
    """The layer of the entry naming `module` most closely: a pattern or its own name, else the longest
    package above it. `distill` is the package's own __init__.py."""
    relative = module.removeprefix("distill.") if module != "distill" else "distill"
    best: tuple[int, int] | None = None  # (closeness, layer)
    for number, names in enumerate(order):
        for name in names:
            if "*" in name:
                closeness = 1000 if fnmatch.fnmatchcase(relative, name) else -1
            elif relative == name or relative.startswith(name + "."):
                closeness = name.count(".") + 1
            else:
                closeness = -1
            if closeness >= 0 and (best is None or closeness > best[0]):
                best = (closeness, number)
    assert best is not None, f"{module} is in no layer: add it to docs/architecture.md#layers"
    return best[1]


# --- the checks ------------------------------------------------------------------------------------------------

def cycles(modules: set[str], found: list[Import]) -> list[list[str]]:
    """The circles of the module graph (its strongly connected components of more than one module). Importing
    a.b.c runs a/__init__.py and a/b/__init__.py first: an edge to each package above the target too, except
    the importer's own packages, which are already loading when it runs."""
    edges: dict[str, set[str]] = {module: set() for module in modules}
    for each in found:
        if not internal(each) or each.module not in modules:
            continue
        target = each.module
        while target and target != "distill":
            if target != each.importer and not each.importer.startswith(target + "."):
                edges[each.importer].add(target)
            target = target.rpartition(".")[0]
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def connect(module: str) -> None:  # Tarjan's algorithm
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(edges[module]):
            if target not in index:
                connect(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in sorted(modules):
        if module not in index:
            connect(module)
    return circles


def core_packages() -> set[str]:
    """The import names of distill's core dependencies (pyproject.toml's `dependencies`)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = {re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower() for requirement in project["dependencies"]}
    renamed = {"ruamel.yaml": "ruamel", "json-repair": "json_repair"}
    return {renamed.get(name, name.replace("-", "_")) for name in names}


def test_no_module_imports_itself_back():
    modules, found = all_imports()
    circles = cycles(modules, found)
    shown = ["  " + " <-> ".join(circle) + ":\n" + "\n".join(
        f"    {each}" for each in found if each.importer in circle and each.module in circle) for circle in circles]
    assert not circles, "circles between modules (move what both need into a module below them):\n" + "\n".join(shown)


def test_no_import_runs_up_the_layers():
    modules, found = all_imports()
    order = layers()
    assert len(order) > 5 and all(order), "docs/architecture.md has lost its list of layers"
    upward = [f"  {each}: layer {layer_of(each.importer, order) + 1} imports layer {layer_of(each.module, order) + 1}"
              for each in found if internal(each) and each.module in modules
              and layer_of(each.module, order) > layer_of(each.importer, order)]
    assert not upward, "imports up the layers of docs/architecture.md#layers:\n" + "\n".join(upward)


def test_no_module_imports_another_ones_private_name():
    _, found = all_imports()
    private = [f"  {each}" for each in found if internal(each)
               and (each.name or each.module.rpartition(".")[2]).startswith("_")
               and not (each.name or "").startswith("__")]
    assert not private, "private names imported from another module (make them public, or move the code):\n" + \
        "\n".join(private)


def test_imports_inside_functions_are_an_entry_points_or_an_optional_extras():
    """Anything else goes at the top of its module, where the import graph shows it. A module of distill's that
    imports an extra at its own top (an adapter: a teacher backend, a subclass of an extra's class) counts as
    that extra."""
    _, found = all_imports()
    order = layers()
    entry = len(order) - 1
    ours = core_packages() | set(sys.stdlib_module_names)

    def extra(each: Import) -> bool:
        return not internal(each) and each.module.partition(".")[0] not in ours

    adapters = {each.importer for each in found if not each.in_function and extra(each)}
    late = [f"  {each}" for each in found if each.in_function
            and layer_of(each.importer, order) != entry
            and not extra(each) and each.module not in adapters]
    assert not late, "imports inside functions that belong at the top of their module:\n" + "\n".join(late)
