"""Bad input at the door: one line on stderr and a non-zero exit, before any node starts.

Each case runs the real console script in its own process (``bci-session``, ``bci-train``) and
checks its exact message, that it is one line (no traceback), and that nothing was written
where the bad input pointed.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from session_helpers import REPO, run_session, write_config

from bci.align import Hyperalignment
from bci.align.persistence import load_aligner, save_aligner
from bci.decode.model import fit_decoding_model, load_decoding_model


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.fixture(scope="module")
def nan_model(tmp_path_factory):
    """A fitted two-subject model whose ridge weights hold one NaN, saved as a model file."""
    rng = np.random.default_rng(0)
    responses = [rng.standard_normal((20, 12)), rng.standard_normal((20, 10))]
    model = fit_decoding_model(responses, rng.standard_normal((20, 4)), alphas=(1.0,))
    model.decoder.coef_ = model.decoder.coef_.copy()
    model.decoder.coef_[0, 0] = np.nan
    return model.save(tmp_path_factory.mktemp("nan") / "nan-model.npz")


def test_a_nan_model_is_refused_at_load(nan_model):
    with pytest.raises(ValueError) as err:
        load_decoding_model(nan_model)
    assert str(err.value) == f"{nan_model} has NaN or Inf values in ridge/coef_"


def test_an_inf_aligner_is_refused_at_load(tmp_path):
    rng = np.random.default_rng(1)
    aligner = Hyperalignment(verbose=False).fit([rng.standard_normal((30, 8)) for _ in range(2)])
    path = save_aligner(aligner, tmp_path / "aligner.npz")
    load_aligner(path)  # the saved file is fine
    aligner.template_ = np.full_like(aligner.template_, np.inf)
    save_aligner(aligner, path)
    with pytest.raises(ValueError) as err:
        load_aligner(path)
    assert str(err.value) == f"{path}: has NaN or Inf values in attr/template_"


def test_bci_session_refuses_a_nan_model(tmp_path, nan_model):
    config = write_config(tmp_path / "s.toml", model={"path": str(nan_model)})
    done = run_session(config, tmp_path / "out", timeout=60)
    assert done.returncode == 2
    line = _one_line(done.stderr)
    assert line == f"bci-session: [model] {nan_model} has NaN or Inf values in ridge/coef_"
    assert not (tmp_path / "out" / "summary.json").exists()


def test_bci_session_refuses_a_model_path_that_does_not_exist(tmp_path):
    missing = tmp_path / "models" / "sub-01.npz"
    config = write_config(tmp_path / "s.toml", model={"path": str(missing)})
    done = run_session(config, tmp_path / "out", timeout=60)
    assert done.returncode == 2
    assert _one_line(done.stderr) == (
        f"bci-session: [model] path {missing} does not exist (leave path empty to fit the model "
        "from the calibration run)"
    )
    assert not missing.exists()  # it is not fitted and written there


def test_bci_session_refuses_a_bus_host_of_another_machine(tmp_path):
    config = write_config(tmp_path / "s.toml", bus={"host": "10.0.0.5"})
    done = run_session(config, tmp_path / "out", timeout=60)
    assert done.returncode == 2
    assert _one_line(done.stderr) == (
        "bci-session: [bus] host = '10.0.0.5' is not loopback: the bus then needs CURVE keys; "
        "make them with bci-keys DIR MACHINE... and set [bus] keys = DIR"
    )


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_bci_train_refuses_a_malicious_pickle_in_one_line(tmp_path):
    marker = tmp_path / "pwned"
    data = tmp_path / "data_1.dat"
    data.write_bytes(pickle.dumps(_Payload(str(marker))))
    done = subprocess.run(
        [sys.executable, "-m", "bci.train", str(data), "--out", str(tmp_path / "m.npz")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 1
    assert _one_line(done.stderr) == (
        f"bci-train: refusing to unpickle posix.system from {data}: "
        "only numpy arrays, lists and tuples are allowed"
    )
    assert not marker.exists() and not (tmp_path / "m.npz").exists()


# -- files and folders that were tracebacks ------------------------------------------------------
def _evolve_session(folder):
    from bci.session.config import load_config

    (folder / "evolve").mkdir(parents=True)
    config = load_config(REPO / "configs" / "demo-evolve.toml")
    (folder / "session.json").write_text(json.dumps({"config": config.to_dict()}))
    return folder


def test_bci_session_refuses_a_session_folder_it_cannot_make(tmp_path):
    config = write_config(tmp_path / "s.toml")
    (tmp_path / "taken").write_text("a file, not a folder")
    for out, why in ((tmp_path / "taken", "File exists"), (tmp_path / "taken" / "x", "Not a")):
        done = run_session(config, out, timeout=60)
        assert done.returncode == 2
        assert _one_line(done.stderr).startswith(
            f"bci-session: cannot make the session folder {out}: {why}"
        )
    assert (tmp_path / "taken").read_text() == "a file, not a folder"


def test_bci_session_refuses_configs_that_are_not_text_or_nest_too_deeply(tmp_path):
    binary, deep = tmp_path / "binary.toml", tmp_path / "deep.toml"
    binary.write_bytes(b"\xff\xfe[session]\n")
    deep.write_text("a = " + "[" * 100_000 + "]" * 100_000)
    for config, why in ((binary, "'utf-8' codec can't decode byte 0xff"), (deep, "nested too")):
        done = run_session(config, tmp_path / "out", timeout=60)
        assert done.returncode == 2
        assert _one_line(done.stderr).startswith(f"bci-session: {config}: not valid TOML ({why}")
    assert not (tmp_path / "out").exists()


def test_bci_session_refuses_to_resume_a_damaged_session_folder(tmp_path):
    deep = tmp_path / "deep"
    deep.mkdir()
    (deep / "session.json").write_text('{"config": ' + "[" * 100_000 + "]" * 100_000 + "}")
    done = run_session(None, deep, mode="evolve", resume=True, timeout=60)
    assert done.returncode == 2
    assert _one_line(done.stderr).startswith(
        f"bci-session: cannot resume {deep}: no readable session.json (maximum recursion depth"
    )
    # a damaged checkpoint was taken for "no generation yet": every node started, and the evolve
    # node failed on it
    damaged = _evolve_session(tmp_path / "damaged")
    (damaged / "evolve" / "checkpoint.npz").write_bytes(b"PK\x03\x04 not a zip file")
    done = run_session(None, damaged, mode="evolve", resume=True, timeout=60)
    assert done.returncode == 2
    assert _one_line(done.stderr) == (
        f"bci-session: cannot resume {damaged}: {damaged}/evolve/checkpoint.npz is not a "
        "readable evolve checkpoint: File is not a zip file"
    )
    assert sorted(p.name for p in damaged.iterdir()) == ["evolve", "session.json"]


# -- model files whose arrays do not fit together -------------------------------------------------
def _model_variant(path, good, arrays=None, meta=None, drop=()):
    from bci.archive import json_entry, read_json_entry, read_npz, write_npz

    entries = read_npz(good)
    doc = read_json_entry(entries, "__model__")
    entries.update(arrays or {})
    doc.update(meta or {})
    for key in drop:
        entries.pop(key, None)
        doc.pop(key, None)
    entries["__model__"] = json_entry(doc)
    return write_npz(path, entries)


@pytest.fixture(scope="module")
def good_model(tmp_path_factory):
    rng = np.random.default_rng(0)
    responses = [rng.standard_normal((20, 12)), rng.standard_normal((20, 10))]
    model = fit_decoding_model(responses, rng.standard_normal((20, 4)), alphas=(1.0,))
    return model.save(tmp_path_factory.mktemp("good") / "model.npz")


WRONG_MODELS = {  # each loaded (or raised KeyError / TypeError) and broke the first trial
    "coef": ({"arrays": {"ridge/coef_": np.zeros((4, 7))}}, "matmul: Input operand 1 has a"),
    "mean": ({"arrays": {"feature_mean": np.zeros((1, 5))}}, "operands could not be broadcast"),
    "std": ({"arrays": {"feature_std": np.zeros(12)}}, "X contains NaN or inf"),
    "text": ({"arrays": {"ridge/intercept_": np.array(["a"] * 4)}}, "ufunc 'add' did not"),
    "voxels": ({"meta": {"n_voxels": [13, 10]}}, "subject 0: expected 12 voxels, got 13"),
    "huge": ({"meta": {"n_voxels": [10**30, 10]}}, "n_voxels [1000000000000000000000000000000"),
    "params": ({"meta": {"ridge_params": [1, 2]}}, "ridge_params [1, 2] is not a map"),
    "missing": ({"drop": ["feature_mean"]}, "'feature_mean'"),
}


@pytest.mark.parametrize("name", WRONG_MODELS)
def test_a_model_whose_arrays_do_not_fit_together_is_refused_at_load(tmp_path, good_model, name):
    change, why = WRONG_MODELS[name]
    path = _model_variant(tmp_path / f"{name}.npz", good_model, **change)
    with pytest.raises(ValueError) as err:
        load_decoding_model(path)
    assert str(err.value).startswith(f"{path} is not a usable decoding model ({why}"), err.value
    assert load_decoding_model(good_model).latent_dim == 4


def test_bci_session_refuses_a_model_whose_arrays_do_not_fit_together(tmp_path, good_model):
    path = _model_variant(tmp_path / "coef.npz", good_model, arrays={"ridge/coef_": np.zeros(3)})
    config = write_config(tmp_path / "s.toml", model={"path": str(path)})
    done = run_session(config, tmp_path / "out", timeout=60)
    assert done.returncode == 2
    assert _one_line(done.stderr).startswith(
        f"bci-session: [model] {path} is not a usable decoding model (matmul:"
    )
    assert not (tmp_path / "out" / "summary.json").exists()
