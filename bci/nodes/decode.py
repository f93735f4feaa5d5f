"""The decode node: trial responses in, predicted latents out (the HYPER pipeline, live).

Calibration trials (phase ``train``) are collected. When the first test response arrives and no
model file exists yet, the calibration data are written as a dataset (``calibration.npz``) and
``bci-train`` fits the model from it (``model.npz``); the node then loads that file, as it loads
a model fitted offline. The dataset's metadata, and so the model's, name the session's
``[preprocess]`` settings (acquire preprocessed its responses with them); a model whose
settings differ from the session's is refused, since its decoder would be applied to responses
preprocessed differently from those it was fitted on.

Each test trial is decoded once every participant's response has arrived (or after a short wait,
with those present): each response is mapped into the common space, the subjects present are
averaged, and the ridge decoder predicts the latent.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bci.bus import Message
from bci.decode.model import DecodingModel, load_decoding_model
from bci.io.datasets import save_dataset
from bci.nodes.base import Node, NodeError
from bci.stimulus_set import load_stimulus_set

CALIBRATION_SETTLE_S = 2.0
"""In a replay, calibration ends once no calibration response has come for this long (wall s)."""


@dataclass
class PendingTrial:
    """Responses of one test trial gathered so far."""

    stimulus: str
    first_arrival: float
    responses: dict[int, np.ndarray] = field(default_factory=dict)
    arrival_lsl: float = 0.0
    bad: list[str] = field(default_factory=list)


class DecodeNode(Node):
    """Decode test trials with the session's model, fitting it from calibration if needed."""

    name = "decode"
    topics = ("responses",)
    poll_ms = 5.0
    needs_meta = {"responses": {"trial": int, "subject": int, "stimulus": str}}
    waits_for_subscribers = True

    def setup(self) -> None:
        model_path = self.config["model"]["path"]
        self.model_path = Path(model_path) if model_path else self.out / "model.npz"
        self.stimuli = load_stimulus_set(self.config["stimuli"]["path"])
        self.model: DecodingModel | None = None
        self.training: subprocess.Popen | None = None
        if self.model_path.is_file():
            self._load_model()
        self.n_subjects = len(self.config["acquire"]["streams"]) or 2
        self.calibration: dict[int, tuple[str, dict[int, np.ndarray]]] = {}
        self.calibration_bad: dict[int, set[int]] = {}
        self.decoded_trials: set[int] = set()
        self.pending: dict[int, PendingTrial] = {}
        self.last_calibration = time.monotonic()
        # Wait at most one TR (wall time) for the other participants of a trial.
        self.wait_s = self.config["timing"]["tr_s"] / self.config["timing"]["time_scale"]

    def _load_model(self) -> None:
        try:
            self.model = load_decoding_model(self.model_path)
        except (OSError, ValueError) as err:
            raise NodeError(f"decode: {err}") from None
        self.n_subjects = len(self.model.n_voxels)
        fitted_on = self.model.meta.get("preprocess")
        session = dict(self.config["preprocess"])
        if isinstance(fitted_on, dict) and fitted_on != session:
            differ = sorted(
                k for k in set(fitted_on) | set(session) if fitted_on.get(k) != session.get(k)
            )
            key = differ[0]
            raise NodeError(
                f"decode: {self.model_path.name} was fitted on responses preprocessed with "
                f"[preprocess] {key} = {fitted_on.get(key)!r}, this session has "
                f"{session.get(key)!r} (give the session the model's [preprocess])"
            )
        self.log.info(
            "decode: model %s (%d subjects, latent_dim %d)",
            self.model_path,
            self.n_subjects,
            self.model.latent_dim,
        )

    def start(self) -> None:
        super().start()
        if self.model is not None:
            self._announce_model()

    def _announce_model(self) -> None:
        self.publisher.wait_for_subscribers("events", timeout_ms=2000)
        self.event("model_ready", path=str(self.model_path), subjects=self.n_subjects)

    def handle(self, msg: Message) -> None:
        if msg.kind != "response" or len(msg.arrays) != 1:
            self.count("ignored")
            return
        meta = msg.meta
        trial, subject, phase = int(meta["trial"]), int(meta["subject"]), meta.get("phase")
        if meta.get("bad"):
            self.count("bad_responses")
            self.log.warning(
                "decode: trial %d subject %d is bad (%s); left out", trial, subject, meta["bad"]
            )
            if phase == "test" and trial in self.decoded_trials:
                return
            if phase == "test":
                self._pending(trial, meta).bad.append(f"subject {subject}: {meta['bad']}")
            elif phase == "train":  # accounted for: calibration need not wait for it
                self.calibration_bad.setdefault(trial, set()).add(subject)
                self.last_calibration = time.monotonic()
            return
        if phase == "test" and trial in self.decoded_trials:  # one latent per trial
            self.count("late_responses")
            self.log.warning(
                "decode: trial %d subject %d came after the trial was decoded; not used",
                trial,
                subject,
            )
            return
        pattern = np.array(msg.arrays[0], dtype=np.float32)
        if phase == "train":
            self.calibration.setdefault(trial, (meta["stimulus"], {}))[1][subject] = pattern
            self.count("calibration_responses")
            self.last_calibration = time.monotonic()
        elif phase == "test":
            entry = self._pending(trial, meta)
            entry.responses[subject] = pattern
            entry.arrival_lsl = max(entry.arrival_lsl, float(meta.get("arrival_lsl") or 0.0))

    def _pending(self, trial: int, meta: dict) -> PendingTrial:
        if trial not in self.pending:
            self.pending[trial] = PendingTrial(str(meta["stimulus"]), time.monotonic())
        return self.pending[trial]

    def tick(self) -> None:
        if self.model is None:
            if self.training is None and (self._calibration_complete() or self._calibration_over()):
                self._calibrate()
            if self.training is None or not self._training_done():
                return
        if not self.pending:
            return
        now = time.monotonic()
        for trial in sorted(self.pending):
            entry = self.pending[trial]
            complete = len(entry.responses) + len(entry.bad) >= self.n_subjects
            if not complete and now - entry.first_arrival < self.wait_s:
                continue
            del self.pending[trial]
            self.decoded_trials.add(trial)
            self._decode(trial, entry)

    def _decode(self, trial: int, entry: PendingTrial) -> None:
        if not entry.responses:
            self.count("undecodable_trials")
            self.log.error(
                "decode: trial %d has no usable response (%s)",
                trial,
                "; ".join(entry.bad) or "none arrived",
            )
            return
        try:
            latent = self.model.predict(entry.responses)
        except ValueError as err:
            self.count("undecodable_trials")
            self.log.error("decode: trial %d: %s", trial, err)
            return
        self.publish(
            "latents",
            [latent],
            kind="latent",
            lsl_time=entry.arrival_lsl,
            meta={
                "trial": trial,
                "stimulus": entry.stimulus,
                "phase": "test",
                "subjects": sorted(entry.responses),
                "arrival_lsl": entry.arrival_lsl,
            },
        )
        self.count("decoded")

    def teardown(self) -> None:
        if self.training is not None and self.training.poll() is None:
            self.training.kill()
            self.training.wait()

    def _calibration_complete(self) -> bool:
        """Every scheduled calibration trial has a response (usable or bad) from every participant.

        The display holds the test run until the model is ready, so a bad calibration response
        must not keep the calibration waiting.
        """
        n_train = self.config["stimuli"]["n_train"]
        trials = set(self.calibration) | set(self.calibration_bad)
        complete = sum(
            len(set(self.calibration.get(t, ("", {}))[1]) | self.calibration_bad.get(t, set()))
            >= self.n_subjects
            for t in trials
        )
        return n_train > 0 and complete >= n_train

    def _calibration_over(self) -> bool:
        """Test responses wait and no calibration response came for :data:`CALIBRATION_SETTLE_S`.

        Live, the display holds the test run until the model is fitted, so a test response
        means the calibration run is over (some of its trials were lost). A replay delivers
        the runs as recorded, all at once at ``--speed 0``: test responses can come before the
        last calibration responses, so it waits until those have stopped coming.
        """
        if not self.pending:
            return False
        settle = CALIBRATION_SETTLE_S if self.config.get("replay") else 0.0
        return time.monotonic() - self.last_calibration >= settle

    def _calibrate(self) -> None:
        """Fit the model from the calibration trials with ``bci-train``, then load it."""
        subjects = sorted({s for _, r in self.calibration.values() for s in r})
        trials = [
            t for t in sorted(self.calibration) if set(self.calibration[t][1]) == set(subjects)
        ]
        if len(trials) < 3 or not subjects:
            raise NodeError(
                f"decode: no model file at {self.model_path} and only {len(trials)} complete "
                "calibration trials to fit one"
            )
        responses = [np.stack([self.calibration[t][1][s] for t in trials]) for s in subjects]
        ids = [self.calibration[t][0] for t in trials]
        latents = self.stimuli.latents[[self.stimuli.index_of(i) for i in ids]]
        data = self.out / "calibration.npz"
        save_dataset(
            data,
            responses,
            latents,
            np.array(["train"] * len(trials)),
            meta={
                "stimuli": ids,
                "trials": trials,
                "subjects": subjects,
                "preprocess": dict(self.config["preprocess"]),
            },
        )
        model = self.config["model"]
        cmd = [
            sys.executable,
            "-m",
            "bci.train",
            str(data),
            "--out",
            str(self.model_path),
            "--aligner",
            model["aligner"],
            "--alphas",
            *map(str, model["alphas"]),
        ]
        if model["n_components"]:
            cmd += ["--n-components", str(model["n_components"])]
        self.log.info(
            "decode: fitting the model on %d calibration trials: %s", len(trials), " ".join(cmd)
        )
        self.training = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.event("model_fitting", trials=len(trials), subjects=subjects)
        self.training_started = time.monotonic()

    def _training_done(self) -> bool:
        """Poll the running bci-train; load its model when it has finished."""
        if self.training.poll() is None:
            return False
        output = self.training.stdout.read().strip()
        self.training.stdout.close()
        if self.training.returncode != 0:
            lines = output.splitlines() or ["no output"]
            raise NodeError(f"decode: bci-train failed: {lines[-1]}")
        self.log.info("decode: %s", output.splitlines()[-1] if output else "model fitted")
        self.log.info("decode: model fitted in %.1f s", time.monotonic() - self.training_started)
        self.training = None
        self._load_model()
        self._announce_model()
        # Test trials that waited for the model are not late: restart their clocks.
        now = time.monotonic()
        for entry in self.pending.values():
            entry.first_arrival = now
        return True


NODE = DecodeNode
