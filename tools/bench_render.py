"""Benchmark rendering: milliseconds per image and images per second.

Times the shipped default generator (``bci.generators.load("default")``) at batch 1, 8 and 32 in
float32 and bfloat16 (channels-last; each row's speed-up is against float32 in the same run), and
a randomly initialised full-size (1024x1024) PGGAN at batch 1 (fp32, plus bf16 on CUDA and on
CPUs that compute it natively), stopped
at ``--pggan-layer`` (layer 9 is the image; lower layers are the feature maps of that stage).
Prints a markdown table.

Usage::

    python tools/bench_render.py --device auto
    python tools/bench_render.py --device cpu --pggan-layer 6 --repeats 3
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

import bci.generators
from bci.generators.device import cpu_has_fast_bf16, pick_device
from bci.generators.pggan import PGGAN

PRECISIONS = ("fp32", "bf16")

HEADER = (
    "generator",
    "device",
    "dtype",
    "resolution",
    "batch",
    "ms/image",
    "images/s",
    "vs fp32",
)


def seconds_per_call(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Mean wall time of ``fn()`` after two warm-up calls, synchronising CUDA around the timing.

    Parameters
    ----------
    fn : Callable
        The work to time.
    device : torch.device
        Where it runs (CUDA is synchronised before reading the clock).
    repeats : int
        Timed calls.

    Returns
    -------
    float
        Seconds per call.
    """

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(2):
        fn()
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - start) / repeats


def _row(
    name: str,
    device: torch.device,
    dtype: str,
    res: str,
    batch: int,
    sec: float,
    fp32_sec: float | None = None,
) -> tuple:
    per_image = sec / batch
    speedup = f"{fp32_sec / sec:.2f}× faster" if fp32_sec else "1 (peer)"
    return (
        name,
        str(device),
        dtype,
        res,
        batch,
        f"{1e3 * per_image:.2f}",
        f"{1 / per_image:.1f}",
        speedup,
    )


def bench_default(device: torch.device, repeats: int) -> list[tuple]:
    """Time ``render`` (latents in, uint8 images out) of the default generator, fp32 and bf16."""
    try:
        gens = {p: bci.generators.load("default", device=device, precision=p) for p in PRECISIONS}
    except Exception as err:  # not written yet, or no weights: report and go on
        print(f"default generator unavailable ({type(err).__name__}: {err})\n")
        return []
    rows = []
    for batch in (1, 8, 32):
        z = gens["fp32"].sample_latents(batch, seed=0)
        fp32_sec = None
        for precision, gen in gens.items():
            sec = seconds_per_call(lambda z=z, g=gen: g.render(z), device, repeats)
            res = f"{gen.image_size}x{gen.image_size}"
            rows.append(_row("default", device, precision, res, batch, sec, fp32_sec))
            fp32_sec = fp32_sec or sec
    return rows


def bench_pggan(device: torch.device, repeats: int, layer: int) -> list[tuple]:
    """Time a random full-size PGGAN forward pass at batch 1, up to ``layer``."""
    torch.manual_seed(0)
    model = PGGAN().eval().requires_grad_(False)
    fast_bf16 = device.type == "cuda" or cpu_has_fast_bf16()
    dtypes = [torch.float32] + ([torch.bfloat16] if fast_bf16 else [])
    rows, fp32_sec = [], None
    for dtype in dtypes:
        model.to(device, dtype)
        if dtype != torch.float32:
            model.to(memory_format=torch.channels_last)
        z = torch.randn(1, model.latent_dim, device=device, dtype=dtype)
        with torch.inference_mode():
            out = model(z, layer)
            sec = seconds_per_call(lambda z=z, m=model: m(z, layer), device, repeats)
        what = "image" if layer == model.n_blocks + 1 else f"{out.shape[1]}-ch features"
        res = f"{out.shape[-1]}x{out.shape[-2]} ({what}, layer {layer})"
        name = "pggan (random)"
        rows.append(_row(name, device, str(dtype).removeprefix("torch."), res, 1, sec, fp32_sec))
        fp32_sec = fp32_sec or sec
    return rows


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run the benchmarks, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls (20 CUDA, 3 CPU)")
    parser.add_argument("--pggan-layer", type=int, default=None, help="9 on CUDA, 6 on CPU")
    parser.add_argument("--skip-default", action="store_true", help="only time the PGGAN")
    args = parser.parse_args(argv)
    device = pick_device(args.device)
    cuda = device.type == "cuda"
    repeats = args.repeats or (20 if cuda else 3)
    layer = args.pggan_layer if args.pggan_layer is not None else (9 if cuda else 6)
    name = torch.cuda.get_device_name(device) if cuda else f"{torch.get_num_threads()} CPU threads"
    print(f"torch {torch.__version__}, {name}, {repeats} timed repeats after 2 warm-ups\n")
    rows = [] if args.skip_default else bench_default(device, repeats)
    rows += bench_pggan(device, repeats, layer)
    print("| " + " | ".join(HEADER) + " |")
    print("|" + "---|" * len(HEADER))
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")


if __name__ == "__main__":
    main()
