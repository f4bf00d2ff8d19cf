"""edge/ runs on a Pi with only `.[edge]` installed: it must never import the trainer's stack."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"trainer", "deploy", "keras", "jax", "jaxlib", "tensorflow", "tf_keras", "torch"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant):
                roots.add(str(node.args[0].value).split(".")[0])
    return roots


EDGE_FILES = sorted((ROOT / "edge").rglob("*.py"))


def test_edge_has_modules():
    assert len(EDGE_FILES) >= 5


@pytest.mark.parametrize("path", EDGE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_edge_never_imports_training_or_deploy_stack(path: Path):
    bad = imported_roots(path) & FORBIDDEN
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_detector_catches_a_forbidden_import(tmp_path: Path):
    sample = tmp_path / "bad.py"
    sample.write_text("import os\nfrom keras import layers\nimport jax.numpy as jnp\n")
    assert imported_roots(sample) & FORBIDDEN == {"keras", "jax"}


def test_edge_extra_lists_no_ml_framework():
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    names = " ".join(extras["edge"]).lower()
    for framework in ("keras", "jax", "tensorflow", "torch"):
        assert framework not in names


def module_level_roots(path: Path) -> set[str]:
    """The packages ``path`` imports as it is loaded (imports inside functions left out)."""
    roots = set()
    for node in ast.parse(path.read_text(), filename=str(path)).body:
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


# scripts/check-edge-stacks.sh runs these with the edge extra only (no keras, jax, tensorflow):
# loading one must not pull in the trainer, nor a benchmark (bench/ scripts import it).
EDGE_TEST_FILES = sorted((ROOT / "tests" / "edge").glob("*.py")) + [
    ROOT / "tests" / name for name in ("conftest.py", "support.py", "browser.py")
]


@pytest.mark.parametrize("path", EDGE_TEST_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_edge_tests_load_without_the_training_stack(path: Path):
    bad = module_level_roots(path) & (FORBIDDEN - {"deploy"} | {"bench"})
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)} as it loads"


def test_a_benchmark_import_in_an_edge_test_is_caught(tmp_path: Path):
    sample = tmp_path / "test_bad.py"
    sample.write_text("from bench.lean import LABELS\n\ndef later():\n    import keras\n")
    assert module_level_roots(sample) == {"bench"}
