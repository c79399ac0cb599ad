"""The layout's rules, checked: no import cycle, SDKs only in their runtime package, pure modules
import without either SDK, and typer and rich only in the command line."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "distrodebug"
#: Third-party packages fenced to one place each: package -> path prefixes allowed to import it.
FENCES = {
    "docker": (),  # our own engine client (runtimes/docker/engine/) replaced the SDK
    "requests": (),
    "kubernetes": ("runtimes/kubernetes/client.py", "runtimes/kubernetes/runtime.py",
                   "runtimes/kubernetes/stream.py"),
    "websocket": ("runtimes/kubernetes/stream.py",),
    "typer": ("cli/",),
    "rich": ("cli/console.py",),
}
#: Modules that decide what is sent or read and must import without docker or kubernetes.
PURE = [
    "distrodebug.model", "distrodebug.privileges", "distrodebug.sidecar", "distrodebug.labels",
    "distrodebug.target", "distrodebug.session", "distrodebug.capture", "distrodebug.cp",
    "distrodebug.doctor", "distrodebug.cleanup", "distrodebug.runtimes",
    "distrodebug.runtimes.base", "distrodebug.runtimes.docker.spec",
    "distrodebug.runtimes.docker.stream", "distrodebug.runtimes.kubernetes.spec",
    "distrodebug.runtimes.kubernetes.pods", "distrodebug.runtimes.kubernetes.profiles",
    "distrodebug.runtimes.kubernetes.errors", "distrodebug.bundle.collect",
    "distrodebug.bundle.writer", "distrodebug.bundle.format", "distrodebug.bundle.report",
    "distrodebug.bundle.extract", "distrodebug.bundle.custody", "distrodebug.bundle.sshsig",
    "distrodebug.bundle.signature", "distrodebug.bundle.evidence",
    "distrodebug.runtimes.kubernetes.events",
    "distrodebug.audit.state", "distrodebug.audit.recording", "distrodebug.audit.log",
    "distrodebug.audit.witness",
]


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def runtime_imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every import that can run: at the top and inside functions alike (a
    cycle closed by a function's import is a cycle still), but not TYPE_CHECKING ones."""
    tree = ast.parse(path.read_text())
    found: list[tuple[str, list[str]]] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.extend((alias.name, []) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.append((node.module, [alias.name for alias in node.names]))
            elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
            else:
                for child in ast.iter_child_nodes(node):
                    if isinstance(child, ast.stmt):
                        visit([child])
                    elif isinstance(child, ast.ExceptHandler):
                        visit(child.body)

    visit(tree.body)
    return found


def all_imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
    return names


def test_no_import_cycle() -> None:
    known = modules()
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for module, names in runtime_imports(path):
            if not module.startswith("distrodebug"):
                continue
            for imported in names or [""]:
                # `from pkg import mod` depends on the module, not on the package's __init__
                target = f"{module}.{imported}" if f"{module}.{imported}" in known else module
                # importing a module runs its packages' __init__ first
                parts = target.split(".")
                for depth in range(2, len(parts) + 1):
                    needed = ".".join(parts[:depth])
                    if needed in known and needed != name and not name.startswith(needed + "."):
                        graph[name].add(needed)
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node)


def test_only_the_command_line_and_the_entry_point_import_the_command_line() -> None:
    """The core reports through session.UI and returns results; the command line draws them."""
    offenders = []
    for path in modules().values():
        rel = str(path.relative_to(PACKAGE))
        if rel.startswith("cli/") or rel == "entry.py":
            continue
        if any(m == "distrodebug.cli" or m.startswith("distrodebug.cli.")
               for m, _ in runtime_imports(path)):
            offenders.append(rel)
    assert not offenders, f"the core imports distrodebug.cli: {offenders}"


@pytest.mark.parametrize("package", sorted(FENCES))
def test_third_party_packages_stay_behind_their_fence(package: str) -> None:
    allowed = FENCES[package]
    offenders = []
    for path in modules().values():
        rel = str(path.relative_to(PACKAGE))
        if rel.startswith(allowed):
            continue
        if any(imp == package or imp.startswith(package + ".") for imp in all_imports(path)):
            offenders.append(rel)
    assert not offenders, f"{package} imported outside {allowed}: {offenders}"


def test_pure_modules_import_without_the_sdks() -> None:
    code = (
        "import sys\n"
        "for name in ('docker', 'kubernetes', 'websocket', 'typer', 'rich'):\n"
        "    sys.modules[name] = None\n"
        f"import importlib\nfor m in {PURE!r}:\n    importlib.import_module(m)\n"
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr


def test_a_missing_sdk_is_an_error_not_a_traceback() -> None:
    code = (
        "import sys\nsys.modules['kubernetes'] = None\n"
        "from distrodebug.cli import main\nmain(['exec', 'pod/x', '--', 'true'])\n"
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert ran.returncode == 125, ran.stderr
    assert "Traceback" not in ran.stderr and "Kubernetes support cannot be loaded" in ran.stderr


def test_the_docker_runtime_needs_neither_the_sdk_nor_requests() -> None:
    """Issue 12: the exec path's start-up; docker, requests and urllib3 cost 110-170 ms to import."""
    code = (
        "import sys\n"
        "for name in ('docker', 'requests', 'urllib3'):\n"
        "    sys.modules[name] = None\n"
        "import distrodebug.runtimes.docker.runtime, distrodebug.cli.app\n"
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr


def private_uses(path: Path, known: dict[str, Path]) -> list[str]:
    """Where ``path`` uses a private name of another of our modules: ``from m import _x``,
    ``m._x``, or setattr/getattr/hasattr(m, "_x") (a test patching a private constant)."""
    tree = ast.parse(path.read_text())
    ours: set[str] = set()  # local names bound to one of our modules
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            ours.update(a.asname or a.name.split(".")[0] for a in node.names
                        if a.name.startswith("distrodebug"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("distrodebug"):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{node.lineno}: from {node.module} import {alias.name}")
                if f"{node.module}.{alias.name}" in known:
                    ours.add(alias.asname or alias.name)

    def private(name: str) -> bool:
        return name.startswith("_") and not name.startswith("__")

    def of_ours(node: ast.expr) -> bool:
        while isinstance(node, ast.Attribute):
            node = node.value
        return isinstance(node, ast.Name) and node.id in ours

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and private(node.attr) and of_ours(node.value):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
        elif (isinstance(node, ast.Call) and ast.unparse(node.func).endswith(("setattr", "getattr",
                                                                               "hasattr"))
              and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
              and isinstance(node.args[1].value, str) and private(node.args[1].value)
              and of_ours(node.args[0])):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_private_name_crosses_a_module() -> None:
    """A private name is the module's own: no other module, test or benchmark imports, reads or
    patches it (a test that patches one through hasattr stops patching silently on a rename)."""
    known = modules()
    offenders = []
    for folder in ("distrodebug", "tests", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            offenders += [f"{path.relative_to(ROOT)}:{use}" for use in private_uses(path, known)]
    assert not offenders, "private names used across modules:\n" + "\n".join(offenders)


def runtime_branches(path: Path) -> list[str]:
    """Comparisons of a runtime's kind with "docker" or "kubernetes" (``target.runtime ==
    "docker"``, ``runtime.kind != "kubernetes"``, ``kind in ("docker", ...)``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        words: list[object] = []
        for side in sides:
            if isinstance(side, ast.Constant):
                words.append(side.value)
            elif isinstance(side, ast.Tuple | ast.List | ast.Set):
                words += [e.value for e in side.elts if isinstance(e, ast.Constant)]
        if any(word in ("docker", "kubernetes") for word in words):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


#: Where naming a runtime is the point: the target grammar (target.py, cp.py's endpoints), the
#: runtimes themselves and the command line that opens them.
RUNTIME_WORDS_ALLOWED = ("target.py", "cp.py", "runtimes/", "cli/")


def test_the_core_has_no_runtime_specific_branch() -> None:
    """What differs between runtimes is a Runtime method, not an if in the core."""
    offenders = []
    for path in modules().values():
        rel = str(path.relative_to(PACKAGE))
        if not rel.startswith(RUNTIME_WORDS_ALLOWED):
            offenders += [f"{rel}:{branch}" for branch in runtime_branches(path)]
    assert not offenders, "runtime-specific branches in the core:\n" + "\n".join(offenders)


def test_unit_tests_import_nothing_that_needs_an_sdk() -> None:
    """tests/unit imports without the kubernetes SDK and websocket: a pure builder is imported
    from its pure module, not through the runtime that uses it."""
    known = modules()
    used = set()
    for path in sorted((ROOT / "tests" / "unit").rglob("*.py")):
        for module, names in runtime_imports(path):
            used |= {name for name in [module, *(f"{module}.{n}" for n in names)] if name in known}
    code = (
        "import importlib, sys\n"
        "for name in ('kubernetes', 'websocket'):\n"
        "    sys.modules[name] = None\n"
        f"for m in {sorted(used)!r}:\n"
        "    try:\n"
        "        importlib.import_module(m)\n"
        "    except ImportError as exc:\n"
        "        print(m, exc)\n"
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert ran.returncode == 0 and not ran.stdout, ran.stdout + ran.stderr


def test_every_sdk_the_package_imports_is_a_named_dependency() -> None:
    """Issue 9, item 5: `pip install .` must be enough for pod targets (the kubernetes client
    was once an extra, and `shell pod/x` ended in ModuleNotFoundError)."""
    import re
    import tomllib

    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    named = {re.split(r"[<>=!~\[; ]", dep, maxsplit=1)[0].lower() for dep in project["dependencies"]}
    distribution = {"websocket": "websocket-client"}  # import name -> what pip installs
    for sdk, allowed in FENCES.items():
        if allowed:
            assert distribution.get(sdk, sdk) in named, f"{sdk} is imported but not a dependency"
