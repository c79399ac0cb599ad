"""The layout's rules, checked: no import cycle, SDKs only in their runtime package, pure modules
import without either SDK, and typer and rich only in the command line."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "distrodebug"
#: Third-party packages fenced to one place each: package -> path prefixes allowed to import it.
FENCES = {
    "docker": (),  # our own engine client (runtimes/docker/engine.py) replaced the SDK
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


def top_level_imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of imports that run when the module is imported (not TYPE_CHECKING ones)."""
    tree = ast.parse(path.read_text())
    found: list[tuple[str, list[str]]] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.extend((alias.name, []) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.append((node.module, [alias.name for alias in node.names]))
            elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
                visit(node.body)
            elif isinstance(node, ast.Try):
                visit(node.body)

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
        for module, names in top_level_imports(path):
            if not module.startswith("distrodebug"):
                continue
            for imported in names:
                # `from pkg import mod` depends on the module, not on the package's __init__
                target = f"{module}.{imported}" if f"{module}.{imported}" in known else module
                if target != name and not name.startswith(target + "."):
                    graph[name].add(target)
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
