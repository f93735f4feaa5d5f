"""Benchmark the decoding path: RidgeDecoder vs RidgeCV, Hyperalignment svd="dual" vs "full".

Everything is measured in the same run on the same synthetic data and printed as markdown tables::

    python tools/bench_decode.py              # HYPER sizes: 1050×4096 → 512, 1086×4096 subjects
    python tools/bench_decode.py --quick      # small sizes, seconds
    python tools/bench_decode.py --repeats 5

Progress goes to stderr. At full size the svd="full" hyperalignment dominates the run time
(tens of minutes on 2 busy cores with ``--repeats 3``). Times are wall-clock seconds, best of the
repeats (methods interleaved, so that load from other processes hits both alike; the minimum is
the least disturbed run, as ``timeit`` recommends); differences are max |a − b| / max |b|.

With fewer trials than voxels the orthogonal Procrustes rotation is not unique outside the span
of the training data, so ``projections_`` of two correct solvers may differ there; the aligned
training data (``transform`` of the fitted datasets) must agree, and is reported too.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable

import numpy as np
import sklearn
from sklearn.linear_model import RidgeCV

from bci.decode import RidgeDecoder

ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0, 1e4, 1e5)


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), np.finfo(float).tiny))


def _best_times(
    fns: dict[str, Callable[[], object]], repeats: int, label: str
) -> tuple[dict, dict]:
    times: dict[str, list[float]] = {name: [] for name in fns}
    outputs: dict[str, object] = {}
    for r in range(repeats):
        for name, fn in fns.items():
            t, outputs[name] = _timed(fn)
            times[name].append(t)
            print(f"[bench] {label} {name} run {r + 1}/{repeats}: {t:.2f} s", file=sys.stderr)
    return {k: min(v) for k, v in times.items()}, outputs


def bench_ridge(n: int, p: int, t: int, n_test: int, repeats: int, seed: int) -> list[str]:
    """RidgeDecoder vs RidgeCV on random ``Y = X W + noise`` (float32)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n + n_test, p), dtype=np.float32)
    w = rng.standard_normal((p, t), dtype=np.float32) / np.sqrt(p)
    y = x @ w + rng.standard_normal((n + n_test, t), dtype=np.float32)
    x_tr, y_tr, x_te = x[:n], y[:n], x[n:]

    def ours():
        model = RidgeDecoder(alphas=ALPHAS, alpha_per_target=True).fit(x_tr, y_tr)
        return model, model.predict(x_te)

    def theirs():
        model = RidgeCV(alphas=ALPHAS, alpha_per_target=True).fit(x_tr, y_tr)
        return model, model.predict(x_te)

    med, out = _best_times({"RidgeDecoder": ours, "RidgeCV": theirs}, repeats, "ridge")
    (m_ours, p_ours), (m_ref, p_ref) = out["RidgeDecoder"], out["RidgeCV"]
    same_alpha = int(np.sum(np.asarray(m_ours.alpha_) == np.asarray(m_ref.alpha_)))
    return [
        f"### Ridge decoder: {n}×{p} → {t} (float32, {len(ALPHAS)} alphas, alpha per target, "
        f"predict {n_test} trials)",
        "",
        "| method | fit+predict (s) | speed-up | max rel. prediction diff | alphas equal |",
        "|---|---:|---:|---:|---:|",
        f"| sklearn RidgeCV (gcv) | {med['RidgeCV']:.3f} | 1.00× | — | — |",
        f"| bci RidgeDecoder | {med['RidgeDecoder']:.3f} | "
        f"{med['RidgeCV'] / med['RidgeDecoder']:.2f}× | {_rel_diff(p_ours, p_ref):.2e} | "
        f"{same_alpha}/{t} |",
    ]


def _subjects(n_subjects: int, n: int, p: int, seed: int) -> list[np.ndarray]:
    """Shared signal, functionally misaligned per subject (signed voxel permutation) + noise."""
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal((n, p), dtype=np.float32)
    out = []
    for _ in range(n_subjects):
        perm = rng.permutation(p)
        signs = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=p)
        noise = rng.standard_normal((n, p), dtype=np.float32)
        out.append(shared[:, perm] * signs + 0.5 * noise)
    return out


def bench_hyperalignment(sizes: list[tuple[int, int, int]], repeats: int, seed: int) -> list[str]:
    """Hyperalignment with the dual (n×n) vs full (p×p) Procrustes SVD."""
    header = [
        '### Hyperalignment: svd="dual" vs svd="full"',
        "",
    ]
    try:
        from bci.align import Hyperalignment
    except ImportError as exc:
        return header + [f"skipped: bci.align unavailable ({exc})"]
    rows = [
        "| subjects × trials × voxels | full (s) | dual (s) | speed-up | projections_ diff "
        "| aligned data diff |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for n_subjects, n, p in sizes:
        data = _subjects(n_subjects, n, p, seed)

        def fit(mode: str, data=data):
            return Hyperalignment(svd=mode, verbose=False).fit(data)

        med, out = _best_times(
            {m: (lambda m=m: fit(m)) for m in ("dual", "full")},
            repeats,
            f"hyperalignment {n_subjects}×{n}×{p}",
        )
        diff = max(
            _rel_diff(a, b)
            for a, b in zip(out["dual"].projections_, out["full"].projections_, strict=True)
        )
        aligned = max(
            _rel_diff(a, b)
            for a, b in zip(out["dual"].transform(data), out["full"].transform(data), strict=True)
        )
        rows.append(
            f"| {n_subjects} × {n} × {p} | {med['full']:.3f} | {med['dual']:.3f} | "
            f"{med['full'] / med['dual']:.2f}× | {diff:.2e} | {aligned:.2e} |"
        )
    return header + rows


def main(argv: list[str] | None = None) -> None:
    """Run the benchmarks and print markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per method (best kept)")
    parser.add_argument("--quick", action="store_true", help="small sizes (a few seconds)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.quick:
        ridge = (300, 1024, 128, 36)
        hyper = [(2, 200, 512), (3, 200, 512)]
    else:
        ridge = (1050, 4096, 512, 36)
        hyper = [(2, 1086, 4096), (3, 1086, 4096)]
    print(
        f"numpy {np.__version__}, scikit-learn {sklearn.__version__}, "
        f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
        f"best of {args.repeats} repeat(s)\n"
    )
    print("\n".join(bench_ridge(*ridge, repeats=args.repeats, seed=args.seed)), end="\n\n")
    print("\n".join(bench_hyperalignment(hyper, repeats=args.repeats, seed=args.seed)))


if __name__ == "__main__":
    main()
