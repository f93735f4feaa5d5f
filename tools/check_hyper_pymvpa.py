"""Check bci's Hyperalignment against PyMVPA 2.6.5 itself, in PyMVPA's own virtual environment.

Builds (once) a venv with the versions PyMVPA 2.6.5 still runs on (numpy 1.23.5, scipy 1.11.4,
nibabel<5.2, ``pip install --no-build-isolation pymvpa2==2.6.5``, which needs ``swig`` from the
system packages and a Python for which numpy 1.23.5 has wheels, 3.8 to 3.11). Then fits both
implementations on the same simulated subjects for a list of settings (``output_dim`` among
them) and prints, per setting, the largest absolute difference between the two mappings of the
training and of held-out data. PyMVPA's ``output_dim`` projection centres on the mean of the
first data a mapper maps after training; as in PyMVPA's usual use, the training data go first.

Usage::

    apt-get install swig                                # once
    python tools/check_hyper_pymvpa.py                  # venv in ~/.cache/bci/pymvpa-2.6.5
    python tools/check_hyper_pymvpa.py --venv DIR --python /usr/bin/python3.11

Exits with status 1 when a difference exceeds ``--tol`` (default 1e-10).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from bci.align import Hyperalignment

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_venv import ensure_peer_venv  # noqa: E402

HERE = Path(__file__).resolve().parent
PINS = ["numpy==1.23.5", "scipy==1.11.4", "nibabel<5.2", "setuptools<70", "wheel"]
CASES = [
    {"name": "defaults", "params": {}},
    {"name": "output_dim=5", "params": {"output_dim": 5}},
    {"name": "output_dim=12", "params": {"output_dim": 12}},
    {"name": "output_dim=5, zscore_all", "params": {"output_dim": 5, "zscore_all": True}},
    {
        "name": "output_dim=8, alpha=0.6, zscore_all",
        "params": {"output_dim": 8, "alpha": 0.6, "zscore_all": True},
    },
    {
        "name": "output_dim=6, level2_niter=3, ref_ds=0, combiner1=0.3",
        "params": {"output_dim": 6, "level2_niter": 3, "ref_ds": 0, "combiner1": 0.3},
    },
    {
        "name": "output_dim=4, no scaling/reflection/zscore_common",
        "params": {
            "output_dim": 4,
            "scaling": False,
            "reflection": False,
            "zscore_common": False,
        },
    },
]


def default_python() -> str:
    """The first interpreter on PATH that numpy 1.23.5 has wheels for."""
    for name in ("python3.11", "python3.10", "python3.9"):
        found = shutil.which(name)
        if found:
            return found
    return sys.executable


def simulate(seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Three subjects sharing a 10-dimensional response, with offsets, gains and noise."""
    rng = np.random.default_rng(seed)
    n_train, n_test, k = 120, 40, 10
    s = rng.standard_normal((n_train + n_test, k))
    train, test = [], []
    for p in (40, 55, 50):
        q = np.linalg.qr(rng.standard_normal((p, k)))[0].T
        x = s @ q * rng.uniform(0.5, 2.0, p) + 0.4 * rng.standard_normal((len(s), p))
        x += rng.uniform(-3, 3, p)
        train.append(x[:n_train])
        test.append(x[n_train:])
    return train, test


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=Path.home() / ".cache/bci/pymvpa-2.6.5")
    parser.add_argument("--python", default=default_python(), help="interpreter for the venv")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tol", type=float, default=1e-10)
    args = parser.parse_args(argv)

    exe = ensure_peer_venv(
        args.venv,
        args.python,
        "mvpa2",
        [PINS, ["--no-build-isolation", "pymvpa2==2.6.5"]],
        needs=("swig", "apt-get install swig"),
        tool="check_hyper_pymvpa",
    )
    train, test = simulate(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        data, cases, out = Path(tmp, "data.npz"), Path(tmp, "cases.json"), Path(tmp, "out.npz")
        arrays = {f"train_{i}": x for i, x in enumerate(train)}
        arrays.update({f"test_{i}": x for i, x in enumerate(test)})
        np.savez(data, **arrays)
        cases.write_text(json.dumps(CASES))
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}  # numpy aliases PyMVPA 2.6.5 still uses
        subprocess.run([exe, HERE / "pymvpa_reference.py", cases, data, out], check=True, env=env)
        with np.load(out) as f:
            ref = {key: f[key] for key in f.files}

    print("| setting | max abs diff (train) | max abs diff (held-out) | output shape |")
    print("|---|---|---|---|")
    worst = 0.0
    for case in CASES:
        ha = Hyperalignment(**case["params"]).fit(train)
        diffs = []
        for part, data_ in (("train", train), ("test", test)):
            ours = ha.transform(data_)
            diffs.append(
                max(
                    float(np.max(np.abs(ours[i] - ref[f"{case['name']}/{part}_{i}"])))
                    for i in range(len(train))
                )
            )
        worst = max(worst, *diffs)
        shape = ha.transform(test)[0].shape
        print(f"| {case['name']} | {diffs[0]:.2e} | {diffs[1]:.2e} | {shape} |")
    print(f"\nlargest difference {worst:.2e} (tolerance {args.tol:.0e})")
    return 0 if worst <= args.tol else 1


if __name__ == "__main__":
    sys.exit(main())
