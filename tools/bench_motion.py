"""Benchmark head-motion estimation: time per 64 x 64 x 36 volume against the TR/4 budget.

The scanner bridge registers every volume to its run's reference with SimpleITK
(:class:`bci.bridge.motion.MotionCorrector`) and resamples it. Two series of the phantom of
:mod:`bci.sim.phantom` (3 x 3 x 3.5 mm voxels, noise sd 5 on a brain of ~700):

* **drift**: a head drifting slowly (a random walk, 0.05 mm / 0.05 degrees per volume): the usual
  case, where each registration starts from the previous volume's answer;
* **jumps**: every volume moved anew within 2 mm and 2 degrees of the reference (the worst case).

For the default (25 % of the voxels sampled) and for all voxels, the table gives the median and
95th percentile time per volume (estimate + realign), their ratio to the budget TR/4 (500 ms at
TR 2 s), the time of the realignment alone (its peer: one resampling) and the largest parameter
errors::

    python tools/bench_motion.py            # 30 volumes per series
    python tools/bench_motion.py --quick    # 8
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import SimpleITK as sitk  # noqa: N813

from bci.bridge.motion import MotionCorrector, to_image
from bci.sim.phantom import epi_affine, moved_volume, random_motion, rigid_transform


def series(kind: str, n: int, seed: int) -> np.ndarray:
    """Motion parameters of a series (volume 0 the reference)."""
    if kind == "jumps":
        return random_motion(n, 2.0, 2.0, seed)
    steps = np.random.default_rng(seed).normal(0.0, 0.05, (n, 6))
    steps[0] = 0.0
    return np.cumsum(steps, axis=0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--volumes", type=int, default=30)
    p.add_argument("--tr", type=float, default=2.0)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    n = 8 if args.quick else args.volumes
    budget_ms = 1000.0 * args.tr / 4
    affine = epi_affine()
    rng = np.random.default_rng(0)
    print(
        f"64x64x36 volumes, TR {args.tr:g} s: budget TR/4 = {budget_ms:.0f} ms; "
        f"{sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()} SimpleITK threads\n"
    )
    print(
        "| series | sampling | p50 ms | p95 ms | p50 / budget | realign only ms "
        "| max error mm | max error deg |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for kind in ("drift", "jumps"):
        params = series(kind, n, 1)
        volumes = [moved_volume(q) + 5.0 * rng.standard_normal((64, 64, 36)) for q in params]
        reference = to_image(volumes[0], affine)
        centre = reference.TransformContinuousIndexToPhysicalPoint([31.5, 31.5, 17.5])
        resample = []
        for q, v in zip(params[1:], volumes[1:], strict=True):
            start = time.perf_counter()
            sitk.Resample(to_image(v, affine), reference, rigid_transform(q, centre))
            resample.append(time.perf_counter() - start)
        for sampling in (0.25, 1.0):
            corrector = MotionCorrector(sampling=sampling)
            corrector.correct(volumes[0], affine)
            times, errors = [], []
            for q, v in zip(params[1:], volumes[1:], strict=True):
                start = time.perf_counter()
                motion = corrector.correct(v, affine)
                times.append(time.perf_counter() - start)
                errors.append(np.abs(motion.params - q))
            t = 1000.0 * np.array(times)
            e = np.array(errors)
            print(
                f"| {kind} | {sampling:.0%} | {np.median(t):.0f} | {np.percentile(t, 95):.0f} | "
                f"{np.median(t) / budget_ms:.2f} | {1000 * np.median(resample):.0f} | "
                f"{e[:, :3].max():.3f} | {e[:, 3:].max():.3f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
