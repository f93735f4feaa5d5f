"""``bci-train``: fit the decoding model (alignment + ridge) and write the file sessions load.

Examples
--------
    bci-train sessions/s01/calibration.npz --out models/s01.npz
    bci-train data_1.dat data_2.dat --out models/hyper.npz --aligner hyperalignment

Inputs are either one bci dataset (``.npz``, all subjects; trials labelled ``train`` are used)
or the HYPER seed's pickles, one ``.dat`` file per subject (``X_tr, T_tr, X_te, T_te``; the
training trials are used, read through a restricted unpickler).

A session's ``calibration.npz`` holds trial responses the acquire node has already preprocessed
online (:mod:`bci.preprocess`, ``[preprocess]``), the same way as the test trials the model will
decode; its metadata names those settings, the model file keeps them, and a session whose
``[preprocess]`` differs refuses the model.
"""

from __future__ import annotations

import argparse
import logging
import pickle
import sys
import time
from pathlib import Path

import numpy as np

from bci.decode.model import fit_decoding_model
from bci.io import load_dataset, load_seed_data
from bci.logs import add_verbosity_argument, setup_logging

log = logging.getLogger(__name__)


def read_training_data(paths: list[Path]) -> tuple[list[np.ndarray], np.ndarray, dict]:
    """Return per-subject training responses, their latents and provenance from input files."""
    if len(paths) == 1 and paths[0].suffix == ".npz":
        data = load_dataset(paths[0])
        responses, latents = data.subset("train")
        if len(latents) == 0:
            raise ValueError(f"{paths[0]} has no trials labelled 'train'")
        return responses, latents, {"data": [str(paths[0])], **data.meta}
    if not all(p.suffix == ".dat" for p in paths):
        raise ValueError(
            "give one bci dataset (.npz) or the seed's .dat files (one per subject), got "
            + ", ".join(p.name for p in paths)
        )
    seeds = [load_seed_data(p) for p in paths]
    latents = seeds[0].T_train
    for p, s in zip(paths[1:], seeds[1:], strict=True):
        if s.T_train.shape != latents.shape or not np.allclose(s.T_train, latents):
            raise ValueError(f"{p} has different training latents from {paths[0]}")
    return [s.X_train for s in seeds], latents, {"data": [str(p) for p in paths]}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bci-train",
        description=__doc__.split("\n\n")[0].replace("``", ""),  # plain text, not RST
        epilog="examples:\n" + __doc__.split("--------\n", 1)[1].split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("data", type=Path, nargs="+", help="a dataset .npz, or seed .dat files")
    p.add_argument("--out", type=Path, required=True, help="model file to write (.npz)")
    p.add_argument("--aligner", choices=("hyperalignment", "srm", "none"), default="hyperalignment")
    p.add_argument(
        "--alphas",
        type=float,
        nargs="+",
        default=[1.0, 10.0, 100.0, 1e3, 1e4, 1e5],
        help="ridge penalties to choose from",
    )
    p.add_argument("--n-components", type=int, default=0, help="PCA components (0: no PCA)")
    add_verbosity_argument(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``bci-train``."""
    args = parse_args(argv)
    setup_logging(args.verbose)
    start = time.monotonic()
    try:
        for path in args.data:
            if not path.is_file():
                raise FileNotFoundError(f"no such data file: {path}")
        responses, latents, meta = read_training_data(args.data)
        model = fit_decoding_model(
            responses,
            latents,
            aligner=args.aligner,
            alphas=args.alphas,
            n_components=args.n_components or None,
            meta=meta,
        )
        model.save(args.out)
    except (OSError, ValueError, pickle.UnpicklingError) as err:  # a refused pickle: one line
        print(f"bci-train: {err}", file=sys.stderr)
        return 1
    alphas = np.unique(model.decoder.alpha_)
    print(
        f"bci-train: {len(latents)} trials x {len(responses)} subjects "
        f"({', '.join(str(r.shape[1]) for r in responses)} voxels) -> {model.latent_dim}-d "
        f"latents; alphas chosen {alphas.tolist()}; wrote {args.out} "
        f"in {time.monotonic() - start:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
