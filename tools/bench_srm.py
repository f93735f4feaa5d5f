"""Benchmark bci's ``SRM.fit`` against BrainIAK's ``DetSRM.fit``, in BrainIAK's own venv.

Both fit the same simulated subjects (default 3 subjects x 1086 samples x 2000 voxels, k=50,
10 iterations, the same seed, so the same initial maps) with the same number of BLAS threads.
Rounds alternate between the two, and each reports its best fit time; the table gives the
ratio and the largest difference between the two models' shared responses and maps.

BrainIAK needs an MPI runtime (``apt-get install openmpi-bin``); the venv is built once with
``pip install brainiak``.

Usage::

    python tools/bench_srm.py                       # venv in ~/.cache/bci/brainiak
    python tools/bench_srm.py --venv DIR --rounds 5 --threads 2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from bci.align import SRM

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_venv import ensure_peer_venv  # noqa: E402

HERE = Path(__file__).resolve().parent


def simulate(seed: int, subjects: int, samples: int, voxels: int, k: int) -> list[np.ndarray]:
    """Subjects sharing a k-dimensional response through orthonormal maps, plus noise."""
    rng = np.random.default_rng(seed)
    s = rng.standard_normal((samples, k))
    out = []
    for _ in range(subjects):
        q = np.linalg.qr(rng.standard_normal((voxels, k)))[0]
        out.append(s @ q.T + 0.5 * rng.standard_normal((samples, voxels)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=Path.home() / ".cache/bci/brainiak")
    parser.add_argument("--python", default=sys.executable, help="interpreter for the venv")
    parser.add_argument("--subjects", type=int, default=3)
    parser.add_argument("--samples", type=int, default=1086)
    parser.add_argument("--voxels", type=int, default=2000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--n-iter", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--repeats", type=int, default=3, help="fits per round and side")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads for both")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    exe = ensure_peer_venv(
        args.venv,
        args.python,
        "brainiak",
        [["brainiak"]],
        needs=("mpiexec", "apt-get install openmpi-bin"),
        tool="bench_srm",
    )
    xs = simulate(args.seed, args.subjects, args.samples, args.voxels, args.features)
    threads = str(args.threads)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "OMPI_ALLOW_RUN_AS_ROOT": "1",  # BrainIAK imports mpi4py, whose MPI refuses root
        "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        "PYTHONWARNINGS": "ignore",
    }
    peer_times: list[float] = []
    our_times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp, "data.npz"), Path(tmp, "out.npz")
        np.savez(data, **{f"x_{i}": x for i, x in enumerate(xs)})
        cmd = [exe, HERE / "brainiak_srm.py", data, out]
        cmd += [str(v) for v in (args.features, args.n_iter, args.seed, args.repeats)]
        for _ in range(args.rounds):
            subprocess.run(cmd, check=True, env=env)
            with np.load(out) as f:
                peer_times += f["times"].tolist()
                peer = {key: f[key] for key in f.files}
            with threadpool_limits(limits=args.threads):
                for _ in range(args.repeats):
                    model = SRM(args.features, args.n_iter, random_state=args.seed)
                    t0 = time.perf_counter()
                    model.fit(xs)
                    our_times.append(time.perf_counter() - t0)

    d_s = float(np.max(np.abs(model.s_ - peer["s"].T)))
    d_w = max(float(np.max(np.abs(w - peer[f"w_{i}"]))) for i, w in enumerate(model.w_))
    shape = f"{args.subjects} x {args.samples} x {args.voxels}, k={args.features}"
    print(f"SRM fit, {shape}, {args.n_iter} iterations, {args.threads} BLAS thread(s)\n")
    print("| implementation | best s | median s | speed vs BrainIAK |")
    print("|---|---|---|---|")
    best_peer = min(peer_times)
    for name, times in (("BrainIAK DetSRM", peer_times), ("bci SRM", our_times)):
        best = min(times)
        print(f"| {name} | {best:.3f} | {np.median(times):.3f} | {best_peer / best:.2f}x |")
    print(f"\nlargest difference: shared response {d_s:.1e}, maps {d_w:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
