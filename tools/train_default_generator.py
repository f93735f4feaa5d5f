"""Train the default face generator that ships with bci.

The generator learns to reproduce the procedural faces of :mod:`bci.faces` from their latents
(an L1 regression of the rendered image on the latent), so its latent space is as smooth as the
renderer's attributes. Reproducible from ``--seed``; writes the weights and a PNG sample grid
(renderer targets above, generator outputs below).

Usage::

    python tools/train_default_generator.py                  # about 35 min on 2 CPU cores
    python tools/train_default_generator.py --steps 200 --out /tmp/g.pt --grid /tmp/g.png
"""

from __future__ import annotations

import argparse
import copy
import math
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from bci.faces import N_ATTRIBUTES, render_latents
from bci.generators.default import WEIGHTS_PATH, FaceDecoder, save_default_module
from bci.generators.handle import to_uint8

ROOT = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=2000, help="optimiser steps (default 2000)")
    p.add_argument("--batch", type=int, default=64, help="faces per step (default 64)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak Adam learning rate")
    p.add_argument("--ema", type=float, default=0.998, help="weight moving-average decay")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    p.add_argument("--out", type=Path, default=WEIGHTS_PATH)
    p.add_argument("--grid", type=Path, default=ROOT / "docs" / "default_generator_samples.png")
    return p.parse_args()


def learning_rate(step: int, total: int, peak: float, warmup: int = 100) -> float:
    """Linear warm-up, then cosine decay to 2% of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return peak * (0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * t)))


def sample_grid(model: torch.nn.Module, path: Path, seed: int, n: int = 16) -> float:
    """Write renderer targets (top rows) above generator outputs (bottom rows); return test L1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    z = torch.from_numpy(np.random.default_rng(seed + 1).standard_normal((n, N_ATTRIBUTES))).float()
    with torch.inference_mode():
        target = render_latents(z) * 2.0 - 1.0
        output = model(z)
    l1 = float((output.clamp(-1, 1) - target).abs().mean())
    rows = [to_uint8(target), to_uint8(output)]
    half = n // 2
    tiles = [
        np.concatenate(list(r[i * half : (i + 1) * half]), axis=1) for r in rows for i in (0, 1)
    ]
    image = np.concatenate([tiles[0], tiles[1], tiles[2], tiles[3]], axis=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(half * 1.1, 4 * 1.1 + 0.6), dpi=100)
    ax.imshow(image)
    ax.set_axis_off()
    ax.set_title("procedural faces (top two rows) and the default generator (bottom two rows)")
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return l1


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data_rng = torch.Generator().manual_seed(args.seed)
    model = FaceDecoder()
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.99))
    start = time.time()
    bar = tqdm(range(args.steps), desc="training default generator", unit="step")
    for step in bar:
        z = torch.randn(args.batch, N_ATTRIBUTES, generator=data_rng)
        with torch.no_grad():
            target = render_latents(z) * 2.0 - 1.0
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, args.steps, args.lr)
        loss = (model(z) - target).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            decay = min(args.ema, (1.0 + step) / (10.0 + step))
            for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
                p_ema.lerp_(p, 1.0 - decay)
        if step % 20 == 0:
            bar.set_postfix(l1=f"{loss.item():.4f}")
    minutes = (time.time() - start) / 60.0
    test_l1 = sample_grid(ema, args.grid, args.seed)
    meta = {
        "seed": args.seed,
        "steps": args.steps,
        "batch": args.batch,
        "lr": args.lr,
        "ema": args.ema,
        "test_l1": round(test_l1, 5),
        "train_minutes": round(minutes, 1),
        "torch": str(torch.__version__),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_default_module(ema, args.out, meta)
    size_mb = args.out.stat().st_size / 1e6
    print(
        f"trained {args.steps} steps in {minutes:.1f} min; held-out L1 {test_l1:.4f} "
        f"(images in [-1, 1]); weights {args.out} ({size_mb:.1f} MB); grid {args.grid}"
    )


if __name__ == "__main__":
    main()
