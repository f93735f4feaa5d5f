"""Write a stimulus set (latents + manifest) for the default generator, or another.

Usage::

    python tools/make_stimulus_set.py stimuli/demo-faces --n 200 --seed 2022
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bci.stimulus_set import make_stimulus_set, save_stimulus_set


def main() -> None:
    p = argparse.ArgumentParser(description="Write a stimulus set of N(0, I) latents.")
    p.add_argument("folder", type=Path)
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--latent-dim", type=int, default=32)
    p.add_argument("--seed", type=int, default=2022)
    p.add_argument("--generator", default="default")
    args = p.parse_args()
    stimuli = make_stimulus_set(args.n, args.latent_dim, args.seed, args.generator)
    save_stimulus_set(stimuli, args.folder)
    print(f"wrote {len(stimuli)} stimuli ({args.latent_dim}-d, seed {args.seed}) to {args.folder}")


if __name__ == "__main__":
    main()
