"""The architecture the code keeps (docs/architecture.md), checked on hw0cli's own imports.

The import graph is drawn with `ast` from every module of hw0cli: module-level imports, imports
inside functions and `TYPE_CHECKING` imports alike, since each is a dependency one way or
another. An import through a package's face (`from hw0cli.train import run_train`) is an arrow
to the module that defines the name (the face's `_EXPORTS` table says which).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hw0cli"

# The levels, lowest first: a module imports its own level's modules only inside its own
# package, and any module of a lower level. `app` orchestrates the commands below the CLI.
LEVELS = {"core": 0, "kernels": 1, "train": 2, "linreg": 2, "batch": 3, "report": 4,
          "app": 5, "cli": 6}
APP = {"hw0cli.pipeline", "hw0cli.smoke", "hw0cli.estimate"}
HEAVY_OPTIONAL = {"onnxruntime", "onnx", "onnxscript", "matplotlib", "wandb", "tensorboard",
                  "psutil", "tensorrt"}
MAX_MODULE_LINES = 400
MAX_TRAINER_LINES = 250


@dataclass(frozen=True)
class Arrow:
    source: str  # importing module
    target: str  # imported module (hw0cli or third-party top-level name)
    names: tuple[str, ...]  # names imported `from` it
    line: int
    in_function: bool
    type_checking: bool


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def is_package(name: str) -> bool:
    return modules()[name].name == "__init__.py" if name in modules() else False


@cache
def face_exports(package: str) -> dict[str, str]:
    """A package face's lazy `_EXPORTS` table: name -> the module that defines it."""
    tree = ast.parse(modules()[package].read_text())
    for node in tree.body:
        if (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == "_EXPORTS"):
            table = ast.literal_eval(node.value)
            return {k: f"{package}.{v}" for k, v in table.items()}
    return {}


def _scopes(tree: ast.AST) -> list[tuple[ast.AST, bool, bool]]:
    """Every import node with (in a function, under `if TYPE_CHECKING`)."""
    found: list[tuple[ast.AST, bool, bool]] = []

    def visit(node: ast.AST, in_function: bool, type_checking: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append((child, in_function, type_checking))
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                      ast.Lambda))
            tc = type_checking or (isinstance(child, ast.If)
                                   and "TYPE_CHECKING" in ast.unparse(child.test))
            visit(child, inner, tc)

    visit(tree, False, False)
    return found


def _resolve(source: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = source.split(".")
    if not is_package(source):
        base = base[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


@cache
def arrows() -> tuple[Arrow, ...]:
    out: list[Arrow] = []
    for name, path in modules().items():
        for node, fn, tc in _scopes(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                out += [Arrow(name, a.name, (), node.lineno, fn, tc) for a in node.names]
                continue
            target = _resolve(name, node)
            if not target.startswith("hw0cli"):
                out.append(Arrow(name, target, tuple(a.name for a in node.names),
                                 node.lineno, fn, tc))
                continue
            for a in node.names:
                sub = f"{target}.{a.name}"
                if sub in modules():
                    out.append(Arrow(name, sub, (), node.lineno, fn, tc))
                elif is_package(target) and a.name in face_exports(target):
                    out.append(Arrow(name, face_exports(target)[a.name], (a.name,),
                                     node.lineno, fn, tc))
                else:
                    out.append(Arrow(name, target, (a.name,), node.lineno, fn, tc))
    return tuple(out)


def internal_arrows() -> list[Arrow]:
    return [a for a in arrows() if a.target in modules() and a.target != a.source]


def package_of(module: str) -> str:
    """`train`, `cli`, ... for a subpackage's modules; `app` or `core` for the flat ones."""
    parts = module.split(".")
    if len(parts) >= 3 or (len(parts) == 2 and is_package(module)):
        return parts[1]
    if module == "hw0cli.__main__":
        return "cli"  # `python -m hw0cli`: the command line's entry
    return "app" if module in APP else "core"


def cycles() -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {m: set() for m in modules()}
    for a in internal_arrows():
        graph[a.source].add(a.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            strong(v)
    return found


def where(a: Arrow) -> str:
    return f"{a.source}:{a.line} -> {a.target}"


# ---------------------------------------------------------------------------------------------
# the rules


def test_no_import_cycles():
    """No module reaches itself through imports, function-level ones counted too."""
    assert not cycles(), "\n".join(map(str, cycles()))


def test_no_arrow_up_the_levels():
    """A module imports lower levels, or its own level only inside its own package."""
    up = []
    for a in internal_arrows():
        src, dst = package_of(a.source), package_of(a.target)
        if src == dst:
            continue
        if LEVELS[dst] >= LEVELS[src]:
            up.append(f"{where(a)} ({src} {LEVELS[src]} -> {dst} {LEVELS[dst]})")
    assert not up, "\n".join(map(str, up))


def test_only_the_cli_imports_typer_or_rich():
    bad = [where(a) for a in arrows()
           if a.target.split(".")[0] in ("typer", "rich", "click")
           and package_of(a.source) != "cli"]
    assert not bad, "\n".join(map(str, bad))


def test_the_library_never_imports_the_cli():
    bad = [where(a) for a in internal_arrows()
           if package_of(a.target) == "cli" and package_of(a.source) != "cli"]
    assert not bad, "\n".join(map(str, bad))


def test_no_private_module_or_name_across_modules():
    """A `_name` is its module's own: no other module imports it (nor a `_module`)."""
    bad = []
    for a in internal_arrows():
        private_module = any(p.startswith("_") and not p.startswith("__")
                             for p in a.target.split("."))
        private_names = [n for n in a.names if n.startswith("_") and not n.endswith("__")]
        if private_module or private_names:
            bad.append(f"{where(a)} {private_names or ''}")
    assert not bad, "\n".join(bad)


def test_only_the_store_touches_h5py():
    bad = [where(a) for a in arrows()
           if a.target.split(".")[0] == "h5py" and a.source != "hw0cli.store"]
    assert not bad, "\n".join(map(str, bad))


def _imports_torch(module: str, seen: set[str] | None = None) -> bool:
    seen = set() if seen is None else seen
    if module in seen:
        return False
    seen.add(module)
    for a in arrows():
        if a.source != module:
            continue
        if a.target.split(".")[0] == "torch":
            return True
        if a.target in modules() and _imports_torch(a.target, seen):
            return True
    return False


def test_kernels_are_pure():
    """kernels import only each other and torch-free hw0cli modules (the errors)."""
    bad = [where(a) for a in internal_arrows()
           if package_of(a.source) == "kernels" and package_of(a.target) != "kernels"
           and (package_of(a.target) != "core" or _imports_torch(a.target))]
    assert not bad, "\n".join(map(str, bad))


def test_evaluation_does_not_load_the_trainer():
    """Evaluating an ONNX file needs the flips and the logits (hw0cli.views), not training:
    `hw0cli.evaluate` reaches neither the module of `class Trainer` nor any of `train/`."""
    trainer = next(m for m, p in modules().items() if "\nclass Trainer" in p.read_text())
    reach: set[str] = set()
    todo = ["hw0cli.evaluate"]
    while todo:
        m = todo.pop()
        for a in internal_arrows():
            if a.source == m and not a.type_checking and a.target not in reach:
                reach.add(a.target)
                todo.append(a.target)
    assert trainer not in reach
    assert sorted(m for m in reach if package_of(m) == "train") == []


def test_function_level_imports_say_why():
    """Outside the CLI (lazy for a fast `--help`), an import inside a function is a heavy
    optional dependency or carries a comment saying why it is not at the top."""
    bad = []
    for a in arrows():
        if not a.in_function or package_of(a.source) == "cli" or a.type_checking:
            continue
        if a.target.split(".")[0] in HEAVY_OPTIONAL:
            continue
        lines = modules()[a.source].read_text().splitlines()
        first = a.line - 1  # the comment may head a block of imports
        while first > 0 and lines[first - 1].strip().startswith(("import ", "from ")):
            first -= 1
        if "#" not in lines[a.line - 1] and not lines[first - 1].strip().startswith("#"):
            bad.append(where(a))
    assert not bad, "\n".join(map(str, bad))


def test_modules_stay_small():
    long = {m: n for m, p in modules().items()
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, long


def test_trainer_class_stays_small():
    path = next(p for p in modules().values() if "class Trainer" in p.read_text())
    node = next(n for n in ast.parse(path.read_text()).body
                if isinstance(n, ast.ClassDef) and n.name == "Trainer")
    assert node.end_lineno - node.lineno + 1 <= MAX_TRAINER_LINES


def test_version_is_written_once():
    """pyproject takes the version from the package: one place to bump."""
    import tomllib
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in meta["project"] and "version" in meta["project"]["dynamic"]
    assert meta["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "hw0cli.__version__"}


def test_every_subpackage_is_installed():
    """pyproject's package discovery finds every folder of hw0cli (a wheel ships them all)."""
    from setuptools import find_packages
    text = (ROOT / "pyproject.toml").read_text()
    assert 'include = ["hw0cli*"]' in text
    found = set(find_packages(str(ROOT), include=["hw0cli*"]))
    folders = {module_name(p.parent) for p in PACKAGE.rglob("*.py")}
    assert folders <= found
