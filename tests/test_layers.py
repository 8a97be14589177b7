"""The import rules of docs/design.md hold, and breaking one fails `lint-imports`."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}  # this copy's packages, ahead of the installed ones
    return subprocess.run([str(LINT), "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def _copy(tmp_path: Path) -> Path:
    for name in ("avatar3d", "data_prep"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.pt"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


@pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed (make test installs it)")
def test_the_package_keeps_its_import_contracts():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


@pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed (make test installs it)")
@pytest.mark.parametrize(("module", "line", "contract"), [
    ("render/volume.py", "import avatar3d.motion.sync", "know nothing of each other"),
    ("face/signals.py", "import data_prep.config", "fronts data_prep"),
    ("drive.py", "import viewer", "fronts data_prep and the viewer"),
    ("files.py", "import avatar3d.face.topology", "Layers"),
])
def test_a_forbidden_import_breaks_a_contract(tmp_path, module, line, contract):
    root = _copy(tmp_path)
    target = root / "avatar3d" / module
    target.write_text(target.read_text() + f"\n{line}  # breaks a rule\n")
    result = _lint(root)
    assert result.returncode == 1, result.stdout[-3000:]
    broken = result.stdout[result.stdout.index("Broken contracts"):]
    assert contract in broken and f"avatar3d.{module[:-3].replace('/', '.')}" in broken
