"""The trainer tests' shared run: the whole chain once, on the tiny preset."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import yuzug_train

# The shipped model's classes: angry/happy/sad plus "none" learnt from the neutral faces.
SHIPPED_CLASSES = ("--other-label", "none", "--other-classes", "neutral")


@pytest.fixture(scope="session")
def tiny_run(small_fer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """prepare -> fit (3 epochs) -> calibrate -> export -> evaluate, trained like the shipped
    model: angry/happy/sad plus "none" from the neutral faces."""
    run = tmp_path_factory.mktemp("run")
    result = yuzug_train(
        "run",
        str(small_fer_dir),
        "--preset",
        "tiny",
        "--epochs",
        "3",
        *SHIPPED_CLASSES,
        "--out",
        str(run),
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return run
