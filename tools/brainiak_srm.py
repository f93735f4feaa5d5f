"""Time BrainIAK's ``DetSRM.fit`` on arrays from an npz file (child of bench_srm.py).

Runs inside the BrainIAK venv that ``tools/bench_srm.py`` builds; it imports only numpy and
brainiak, never bci. Usage::

    python brainiak_srm.py DATA.npz OUT.npz FEATURES N_ITER SEED REPEATS

``DATA.npz`` holds ``x_<i>`` per subject as (samples, voxels); BrainIAK takes the transposes.
``OUT.npz`` gets ``times`` (seconds per fit), ``w_<i>`` (voxels, k) and ``s`` (k, samples).
"""

from __future__ import annotations

import sys
import time

import numpy as np


def main(argv: list) -> None:
    data_path, out_path = argv[:2]
    features, n_iter, seed, repeats = (int(a) for a in argv[2:])
    from brainiak.funcalign.srm import DetSRM

    with np.load(data_path) as f:
        xs = [np.ascontiguousarray(f[f"x_{i}"].T) for i in range(len(f.files))]
    times = []
    for _ in range(repeats):
        model = DetSRM(n_iter=n_iter, features=features, rand_seed=seed)
        t0 = time.perf_counter()
        model.fit(xs)
        times.append(time.perf_counter() - t0)
    out = {"times": np.array(times), "s": model.s_}
    out.update({f"w_{i}": w for i, w in enumerate(model.w_)})
    np.savez(out_path, **out)


if __name__ == "__main__":
    main(sys.argv[1:])
