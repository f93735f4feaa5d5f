"""matplotlib without a screen: every figure is written to a file."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["plt", "save_figure"]


def save_figure(fig: matplotlib.figure.Figure, path: str | Path, dpi: int = 100) -> Path:
    """Lay out ``fig``, write it to ``path`` (folders created) and close it; return the path."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
