"""The package's layers: no import circle, and no module imports a layer above its own.

Layers, lowest first (``LAYERS`` below is the authoritative list):

1. leaves: shared helpers every layer may use (model lookup by name, listing order and
   negative sampling, prompts, LLM loading, cache folders, JSONL files, statistics, plots,
   compat), the shipped yaml folders, and the dataset converters' machinery;
2. config: RecBole's Config with the plugin's yaml;
3. data: item text, image textualization, training samples, CoT data;
4. model: MLLMRecR1;
5. training stages: SFT and GRPO settings, rewards, curves, the stage functions;
6. trainer: MLLMRecR1Trainer, which sequences the stages, and the settings check, which
   knows the stage and reward names;
7. entry points: quick start, compare, recommend and the command-line tools.

A module may import its own layer or lower ones. The graph is read from the source with
``ast``: module-level and function-level ``import`` / ``from ... import`` statements and
``importlib.import_module("<literal>")`` calls. A lookup by computed name is no edge:
``utils.get_model`` finds the model class a config names, as RecBole's own does, which is
how config and the model's retriever reach a model class without importing a higher layer.
"""
import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (layer, modules): ``name`` is that module, ``name.*`` every module below package ``name``;
# the most specific entry wins, so ``recbole_mllmr1.cot.cli`` can sit above ``recbole_mllmr1.cot.*``.
LAYERS = (
    (
        "leaves",
        (
            "recbole_mllmr1",
            "recbole_mllmr1.compat",
            "recbole_mllmr1.cache_dirs",
            "recbole_mllmr1.utils",
            "recbole_mllmr1.optional_packages",
            "recbole_mllmr1.known_keys",
            "recbole_mllmr1.listing",
            "recbole_mllmr1.prompts",
            "recbole_mllmr1.scoring",
            "recbole_mllmr1.llm",
            "recbole_mllmr1.item_tokens",
            "recbole_mllmr1.jsonl_store",
            "recbole_mllmr1.json_files",
            "recbole_mllmr1.per_user_metrics",
            "recbole_mllmr1.significance",
            "recbole_mllmr1.plots",
            "recbole_mllmr1.properties",
            "recbole_mllmr1.baselines",
            "recbole_mllmr1.dataset_converters",
            "recbole_mllmr1.dataset_converters.*",
        ),
    ),
    ("config", ("recbole_mllmr1.config",)),
    (
        "data",
        (
            "recbole_mllmr1.item_text",
            "recbole_mllmr1.hooks",
            "recbole_mllmr1.sequential_model",
            "recbole_mllmr1.textualize",
            "recbole_mllmr1.textualize.*",
            "recbole_mllmr1.training_samples",
            "recbole_mllmr1.cot",
            "recbole_mllmr1.cot.*",
        ),
    ),
    ("model", ("recbole_mllmr1.model", "recbole_mllmr1.model.*")),
    ("training stages", ("recbole_mllmr1.training", "recbole_mllmr1.training.*")),
    ("trainer", ("recbole_mllmr1.trainer", "recbole_mllmr1.settings")),
    (
        "entry points",
        (
            "recbole_mllmr1.quick_start",
            "recbole_mllmr1.recommend",
            "recbole_mllmr1.export",
            "recbole_mllmr1.compare",
            "recbole_mllmr1.compare.*",
            "recbole_mllmr1.cli",
            "recbole_mllmr1.__main__",
            "recbole_mllmr1.cot.cli",
            "recbole_mllmr1.textualize.cli",
            "recbole_mllmr1.dataset_converters.cli",
        ),
    ),
)


def package_folders():
    """setup.py's ``package_dir`` roots: ``recbole_mllmr1.dataset_converters`` is ``dataset_converters/``."""
    with open(os.path.join(ROOT, "setup.py"), encoding="utf-8") as file:
        tree = ast.parse(file.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["PACKAGES"]:
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py has no PACKAGES = {...} mapping")


def find_modules(folders):
    """``{module name: source file}`` for every module under the ``{package: folder}`` roots, subpackages included."""
    modules = {}
    for package, folder in folders.items():
        for directory, subfolders, files in os.walk(os.path.join(ROOT, folder)):
            if "__init__.py" not in files:
                subfolders.clear()
                continue
            relative = os.path.relpath(directory, os.path.join(ROOT, folder))
            name = package if relative == "." else ".".join([package, *relative.split(os.sep)])
            for file in files:
                if file.endswith(".py"):
                    stem = file[:-3]
                    modules[name if stem == "__init__" else f"{name}.{stem}"] = os.path.join(directory, file)
    return modules


def _imported_names(node, module, is_package, modules):
    """The dotted names one AST node imports; ``from a import b`` is ``a.b`` when that is a module, else ``a``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            anchor = module.split(".")
            anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
            base = ".".join(anchor + ([base] if base else []))
        return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
    if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
        function = node.func
        name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", None)
        if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
            return [node.args[0].value]
    return []


def import_graph(modules):
    """``{(importer, imported): first line}`` over ``modules``, each name resolved to the longest known module."""
    edges = {}
    for module, path in modules.items():
        with open(path, encoding="utf-8") as file:
            tree = ast.parse(file.read(), path)
        for node in ast.walk(tree):
            names = _imported_names(node, module, path.endswith("__init__.py"), modules)
            for target in {_known_prefix(name, modules) for name in names} - {None, module}:
                edges[module, target] = min(node.lineno, edges.get((module, target), node.lineno))
    return edges


def _known_prefix(name, modules):
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in modules:
            return ".".join(parts[:end])
    return None


def layer_of(module, layers=LAYERS):
    """Index of the module's layer in ``layers`` (its own name first, then the nearest ``package.*``), or None."""
    exact = {name: index for index, (_, names) in enumerate(layers) for name in names if not name.endswith(".*")}
    below = {name[:-2]: index for index, (_, names) in enumerate(layers) for name in names if name.endswith(".*")}
    if module in exact:
        return exact[module]
    parts = module.split(".")
    for end in range(len(parts) - 1, 0, -1):
        if ".".join(parts[:end]) in below:
            return below[".".join(parts[:end])]
    return None


def cycles(edges):
    """``(members, cycle path [a, b, ..., a])`` for each group of modules that import each other."""
    graph = {}
    for importer, imported in edges:
        graph.setdefault(importer, set()).add(imported)
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def connect(node):  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                connect(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [(sorted(group), _cycle_through(min(group), group, graph)) for group in groups]


def _cycle_through(start, group, graph):
    """A shortest path from ``start`` back to itself inside ``group`` (breadth-first)."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for successor in sorted(graph.get(node, ()) & group):
                if successor == start:
                    return paths[node] + [start]
                if successor not in paths:
                    paths[successor] = paths[node] + [successor]
                    following.append(successor)
        frontier = following
    raise AssertionError(f"{sorted(group)} is not a cycle")


def upward_imports(edges, modules, layers=LAYERS):
    """``importer (layer) -> imported (layer)  path:line`` for each import of a higher layer."""
    found = []
    for (importer, imported), line in sorted(edges.items()):
        low, high = layer_of(importer, layers), layer_of(imported, layers)
        if high > low:
            found.append(
                f"{importer} ({layers[low][0]}) -> {imported} ({layers[high][0]})  "
                f"{os.path.relpath(modules[importer], ROOT)}:{line}"
            )
    return found


MODULES = find_modules(package_folders())
EDGES = import_graph(MODULES)


def test_every_module_has_a_layer():
    unassigned = sorted(module for module in MODULES if layer_of(module) is None)
    assert not unassigned, f"add these modules to a layer of LAYERS in {os.path.relpath(__file__, ROOT)}: {unassigned}"


def test_every_layer_entry_names_a_module():
    stale = [name for _, names in LAYERS for name in names if name.removesuffix(".*") not in MODULES]
    assert not stale, f"LAYERS names modules that do not exist: {stale}"


def test_no_import_circle():
    found = cycles(EDGES)
    assert not found, "import circles:\n" + "\n".join(
        f"{len(members)} modules {members}, shortest circle: {' -> '.join(path)}" for members, path in found
    )


def test_no_module_imports_a_higher_layer():
    found = upward_imports(EDGES, MODULES)
    assert not found, "imports of a higher layer:\n" + "\n".join(found)


def test_the_graph_sees_function_level_and_importlib_imports(tmp_path):
    (tmp_path / "low.py").write_text("def late():\n    from pkg.high import x\n")
    (tmp_path / "high.py").write_text("import importlib\nimportlib.import_module('pkg.low')\n")
    (tmp_path / "__init__.py").write_text("")
    modules = {"pkg": str(tmp_path / "__init__.py"), "pkg.low": str(tmp_path / "low.py"), "pkg.high": str(tmp_path / "high.py")}
    edges = import_graph(modules)
    assert edges == {("pkg.low", "pkg.high"): 2, ("pkg.high", "pkg.low"): 2}
    assert cycles(edges) == [(["pkg.high", "pkg.low"], ["pkg.high", "pkg.low", "pkg.high"])]
    layers = (("low", ("pkg", "pkg.low")), ("high", ("pkg.high",)))
    assert [line.split("  ")[0] for line in upward_imports(edges, modules, layers)] == ["pkg.low (low) -> pkg.high (high)"]
