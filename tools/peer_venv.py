"""A virtual environment of its own for a peer package that cannot share bci's (old numpy, MPI).

Used by the reference checks and benchmarks in ``tools/`` that run a peer implementation
(PyMVPA, BrainIAK) in a subprocess and compare with bci in the same run.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


def ensure_peer_venv(
    venv: Path,
    python: str,
    module: str,
    installs: list[list[str]],
    needs: tuple[str, str] | None = None,
    tool: str = "peer",
) -> Path:
    """Return the interpreter of ``venv``, building it first unless it imports ``module``.

    Parameters
    ----------
    venv : Path
        Folder of the virtual environment.
    python : str
        Interpreter to create it with.
    module : str
        The peer's import name; a venv that imports it is used as it is.
    installs : list of list of str
        ``pip install`` argument lists, run in order when the venv is built.
    needs : (str, str) or None
        A program the build needs on PATH and the hint to print when it is missing.
    tool : str
        The calling tool's name, for messages.

    Returns
    -------
    Path
        The venv's ``python``.
    """
    exe = venv / "bin" / "python"
    if exe.exists():
        found = subprocess.run([exe, "-c", f"import {module}"], capture_output=True)
        if found.returncode == 0:
            return exe
    if needs is not None and shutil.which(needs[0]) is None:
        sys.exit(f"{tool}: building {module} needs {needs[0]} ({needs[1]})")
    print(f"building the {module} venv in {venv} with {python} (a few minutes) ...", flush=True)
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    for args in installs:
        subprocess.run([str(exe), "-m", "pip", "install", "--quiet", *args], check=True)
    return exe
