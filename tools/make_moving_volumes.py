"""Write a series of moving NIfTI volumes (a head phantom) for the scanner bridge's motion path.

Volume 0 is the reference; every later volume is the phantom of :mod:`bci.sim.phantom` moved by
a rigid transform drawn uniformly within ``--max-mm`` and ``--max-deg`` (64 x 64 x 36 voxels of
3 x 3 x 3.5 mm), with Gaussian noise. Beside the volumes: ``mask.nii.gz`` (the brain) and
``motion.tsv`` (the true parameters, in the bridge's convention)::

    python tools/make_moving_volumes.py --out /tmp/moving --n-volumes 20
    bci-scanner-bridge --watch /tmp/moving --mask /tmp/moving/mask.nii.gz --pattern 'vol_*'
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bci.sim.phantom import random_motion, write_moving_series


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder to write (created)")
    p.add_argument("--n-volumes", type=int, default=10)
    p.add_argument("--max-mm", type=float, default=2.0)
    p.add_argument("--max-deg", type=float, default=2.0)
    p.add_argument("--tr", type=float, default=2.0)
    p.add_argument("--noise", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.n_volumes < 1:
        p.error("--n-volumes must be >= 1")
    params = random_motion(args.n_volumes, args.max_mm, args.max_deg, args.seed)
    paths = write_moving_series(args.out, params, tr_s=args.tr, noise=args.noise, seed=args.seed)
    print(f"wrote {len(paths)} volumes, mask.nii.gz and motion.tsv to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
