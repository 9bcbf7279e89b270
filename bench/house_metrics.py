"""The house in numbers (issue 19): what a newcomer trips over, counted from the source.

    python bench/house_metrics.py          # a table
    python bench/house_metrics.py --json   # the same as JSON

- private cross-module imports: `from labtui.x import _name` (or screens) from another module;
- in-function imports of labtui/screens modules (hide import circles);
- import circles between packages of the engine (module level and in-function imports both count);
- the largest modules.
"""

from __future__ import annotations

import ast
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("labtui", "screens")


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _own(target: str) -> bool:
    return target.split(".")[0] in PACKAGES


def measure() -> dict[str, object]:
    mods = modules()
    private: list[str] = []
    in_function: list[str] = []
    edges: dict[str, set[str]] = defaultdict(set)
    sizes: list[tuple[int, str]] = []
    for name, path in mods.items():
        text = path.read_text()
        sizes.append((len(text.splitlines()), str(path.relative_to(ROOT))))
        tree = ast.parse(text)
        is_package = path.name == "__init__.py"
        function_nodes: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, (ast.Import, ast.ImportFrom)):
                        function_nodes.add(id(inner))
        for node in ast.walk(tree):
            targets: list[tuple[str, list[str]]] = []
            if isinstance(node, ast.ImportFrom):
                target = _resolve(name, node, is_package)
                targets.append((target, [a.name for a in node.names]))
            elif isinstance(node, ast.Import):
                targets.extend((a.name, []) for a in node.names)
            else:
                continue
            for target, names in targets:
                if not _own(target):
                    continue
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                if id(node) in function_nodes:
                    in_function.append(f"{where} {target}")
                for imported in names:
                    if imported.startswith("_") and not imported.startswith("__"):
                        if f"{target}.{imported}" in mods:
                            continue  # a private module, imported by its package
                        private.append(f"{where} {target}.{imported}")
                src = ".".join(name.split(".")[:2])
                dst = ".".join(target.split(".")[:2])
                if src != dst:
                    edges[src].add(dst)
    return {
        "private_cross_module_imports": private,
        "in_function_imports": in_function,
        "circles": _circles(edges),
        "largest_modules": sorted(sizes, reverse=True)[:10],
    }


def _circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
        if v not in index:
            visit(v)
    return result


def main() -> None:
    numbers = measure()
    if "--json" in sys.argv:
        print(json.dumps(numbers, indent=2))
        return
    print(f"private cross-module imports: {len(numbers['private_cross_module_imports'])}")
    for line in numbers["private_cross_module_imports"]:
        print(f"  {line}")
    print(f"in-function imports of labtui/screens modules: {len(numbers['in_function_imports'])}")
    print(f"circles between packages: {len(numbers['circles'])}")
    for circle in numbers["circles"]:
        print(f"  {' <-> '.join(circle)}")
    print("largest modules:")
    for size, path in numbers["largest_modules"]:
        print(f"  {size:5d} {path}")


if __name__ == "__main__":
    main()
