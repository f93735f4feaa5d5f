"""The Markdown page a benchmark writes into ``docs/``: a title, how to run it, its table and
its figure (``docs/<stem>.md`` beside ``docs/<stem>.png``)."""

from __future__ import annotations

from pathlib import Path


def write_bench_doc(folder: Path, stem: str, title: str, intro: str, table: str, alt: str) -> Path:
    """Write ``folder / f"{stem}.md"`` and return its path.

    Parameters
    ----------
    folder : Path
        Where the page and its figure ``{stem}.png`` go.
    stem : str
        The file name without suffix, also the figure's.
    title, intro : str
        The page's heading, and the paragraph under it (how it was run, what it shows).
    table : str
        The Markdown table the benchmark printed.
    alt : str
        The figure's alternative text.
    """
    path = Path(folder) / f"{stem}.md"
    path.write_text(f"# {title}\n\n{intro}\n\n{table}\n\n![{alt}]({stem}.png)\n")
    return path
