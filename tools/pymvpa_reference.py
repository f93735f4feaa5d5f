"""Run PyMVPA 2.6.5's Hyperalignment on arrays from an npz file (child of check_hyper_pymvpa.py).

Runs inside the PyMVPA venv that ``tools/check_hyper_pymvpa.py`` builds; it imports only numpy
and mvpa2, never bci. Usage::

    python pymvpa_reference.py CASES.json DATA.npz OUT.npz

``DATA.npz`` holds ``train_<i>`` and ``test_<i>`` per subject; ``CASES.json`` is a list of
``{"name": str, "params": dict}`` in bci's parameter names. ``OUT.npz`` gets
``<name>/train_<i>`` and ``<name>/test_<i>``: every subject's data mapped into the common space.
"""

from __future__ import annotations

import json
import sys
import warnings

import numpy as np


def run_case(params: dict, train: list, test: list) -> tuple[list, list]:
    """Fit PyMVPA's Hyperalignment on ``train``; map ``train`` and ``test`` with its mappers."""
    from mvpa2.algorithms.hyperalignment import Hyperalignment
    from mvpa2.datasets import Dataset
    from mvpa2.mappers.procrustean import ProcrusteanMapper

    w = float(params.get("combiner1", 0.5))
    kwargs = {
        "alpha": float(params.get("alpha", 1.0)),
        "level2_niter": int(params.get("level2_niter", 1)),
        "zscore_all": bool(params.get("zscore_all", False)),
        "zscore_common": bool(params.get("zscore_common", True)),
        "combiner1": lambda x, y: w * x + (1.0 - w) * y,
        "alignment": ProcrusteanMapper(
            space="commonspace",
            scaling=bool(params.get("scaling", True)),
            reflection=bool(params.get("reflection", True)),
        ),
    }
    if params.get("ref_ds") is not None:
        kwargs["ref_ds"] = int(params["ref_ds"])
    if params.get("output_dim") is not None:
        kwargs["output_dim"] = int(params["output_dim"])
    mappers = Hyperalignment(**kwargs)([Dataset(x) for x in train])
    mapped_train = [m.forward(Dataset(x)).samples for m, x in zip(mappers, train, strict=True)]
    mapped_test = [m.forward(Dataset(x)).samples for m, x in zip(mappers, test, strict=True)]
    return [np.asarray(a) for a in mapped_train], [np.asarray(a) for a in mapped_test]


def main(argv: list) -> None:
    cases_path, data_path, out_path = argv
    with open(cases_path) as f:
        cases = json.load(f)
    data = np.load(data_path)
    n = sum(1 for key in data.files if key.startswith("train_"))
    train = [data[f"train_{i}"] for i in range(n)]
    test = [data[f"test_{i}"] for i in range(n)]
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyMVPA 2.6.5 uses numpy aliases deprecated since 1.20
        for case in cases:
            mapped_train, mapped_test = run_case(case["params"], train, test)
            for i in range(n):
                out[f"{case['name']}/train_{i}"] = mapped_train[i]
                out[f"{case['name']}/test_{i}"] = mapped_test[i]
    np.savez(out_path, **out)


if __name__ == "__main__":
    main(sys.argv[1:])
