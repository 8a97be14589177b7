"""Makes this Python lack the packages a GPU machine lacks, for ``gpu_check.sh --dry-run``.

Python imports ``sitecustomize`` at start when it is on the path: with this folder on
PYTHONPATH, each top-level module named in ``AVATAR3D_ABSENT_MODULES`` (comma-separated)
then fails to import as if it were not installed. A dry run on a development machine,
where every dependency is installed, so fails where the GPU machine would.
"""

import os
import sys
from importlib.abc import MetaPathFinder

ABSENT_VAR = "AVATAR3D_ABSENT_MODULES"


class _Absent(MetaPathFinder):
    def __init__(self, names: frozenset[str]):
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r} (absent on the GPU machine: {ABSENT_VAR})",
                                      name=name)
        return None


_names = frozenset(name.strip() for name in os.environ.get(ABSENT_VAR, "").split(",") if name.strip())
if _names:
    sys.meta_path.insert(0, _Absent(_names))
