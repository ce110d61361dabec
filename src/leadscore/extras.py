"""Optional dependencies (pyproject extras: ``lightgbm``, ``spark``) and the error that names the one to
install. The quick start's ``pip install -e .`` runs everything else (without LightGBM, ``learn``'s
challenger is scikit-learn's HistGradientBoosting: ``learn/challenger.py``)."""

from __future__ import annotations

import importlib
from types import ModuleType

from leadscore.errors import LeadscoreError


def require(module: str, extra: str, what: str) -> ModuleType:
    """``module``, imported; or an error saying that ``what`` needs ``pip install 'leadscore[EXTRA]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise LeadscoreError(
            f"{what} needs {module.split('.')[0]}, which cannot be loaded ({exc}): "
            f"pip install 'leadscore[{extra}]'"
        ) from None
