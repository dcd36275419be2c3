"""The example (paper) cases shipped with femion, for ``femion examples``.

A pip install puts them under ``<prefix>/share/femion/cases`` (pyproject.toml's data files); a
checkout or an editable install has them in the repository's ``cases/``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

__all__ = ["copy_examples", "examples_dir"]


def examples_dir() -> Path:
    """Where the shipped case files are: the repository's cases/, else the installed share/femion/cases."""
    for where in (Path(__file__).resolve().parents[1] / "cases", Path(sys.prefix) / "share" / "femion" / "cases"):
        if where.is_dir() and any(where.glob("*.yaml")):
            return where
    raise FileNotFoundError("femion's example cases are not installed (no cases/ beside the package and none in "
                            f"{Path(sys.prefix) / 'share' / 'femion' / 'cases'})")


def copy_examples(target: Path) -> list[Path]:
    """Copy every shipped case file into ``target`` (made if missing); FileExistsError naming the
    first one already there (nothing is overwritten, nothing copied)."""
    source = examples_dir()
    files = sorted(source.glob("*.yaml"))
    clash = [f.name for f in files if (target / f.name).exists()]
    if clash:
        raise FileExistsError(f"{target / clash[0]} exists (and {len(clash) - 1} more); femion does not overwrite "
                              "case files: choose another directory")
    target.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy2(f, target / f.name)) for f in files]
