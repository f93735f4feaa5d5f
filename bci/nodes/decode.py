"""The decode node: trial responses in, predicted latents out (the HYPER pipeline, live).

Calibration trials (phase ``train``) are collected, and each response is written to the session
folder as it arrives (:mod:`bci.nodes.calibration_store`), so a restarted decode node picks up
where it was. Without a model file, the model is fitted when the calibration is over:

* every scheduled calibration trial has a response (usable or bad) from every participant; or
* the display's ``run_end`` event of the last calibration run came, and
  :data:`CALIBRATION_GRACE_TR` TRs (scanner time; plus :data:`CALIBRATION_GRACE_S` wall seconds)
  have passed for acquire to cut the run's last windows (a stream that stopped is given up on
  within 2 TRs there); or
* (a replay) test responses wait and no calibration response came for a while.

The fit uses the **complete** trials: those with a usable, finite response from every
participant (the subjects acquire announced in its ``participants`` event; without it, every
subject seen in the calibration). With fewer than :data:`MIN_CALIBRATION_TRIALS` complete trials
the node stops with a one-line error (the session's summary names it, and the exit is non-zero);
the display holds the test run for the model, so the session never waits for ever.

The complete trials are written as a dataset (``calibration.npz``) and ``bci-train`` fits the
model from it (``model.npz``); the node then loads that file, as it loads a model fitted
offline. The dataset's metadata, and so the model's, name the session's ``[preprocess]``
settings (acquire preprocessed its responses with them); a model whose settings differ from the
session's is refused, since its decoder would be applied to responses preprocessed differently
from those it was fitted on.

Each test trial is decoded once every participant's response has arrived (or after a short
wait, with those present): each response is mapped into the common space, the subjects present
are averaged, and the ridge decoder predicts the latent. A response that comes after its trial
was decoded is counted (``late_responses``) and not decoded again.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bci.bus import Message
from bci.decode.model import DecodingModel, load_decoding_model
from bci.io.datasets import load_dataset, save_dataset
from bci.nodes.base import Node, NodeError
from bci.nodes.calibration_store import CalibrationStore
from bci.nodes.runs import plan_runs
from bci.stimulus_set import load_stimulus_set

CALIBRATION_SETTLE_S = 2.0
"""In a replay, calibration ends once no calibration response has come for this long (wall s)."""
CALIBRATION_GRACE_TR = 3.0
"""After the last calibration run ended, wait this many TRs (scanner time) for its last responses
(acquire gives a stopped stream up within 2 TRs)."""
CALIBRATION_GRACE_S = 1.0
"""Wall seconds added to :data:`CALIBRATION_GRACE_TR` (bus and process latency)."""
MIN_CALIBRATION_TRIALS = 3
"""Fewest complete calibration trials the model is fitted from (the ridge's leave-one-out needs
at least 2; 3 leaves one out of two)."""


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
    topics = ("responses", "events")
    poll_ms = 5.0
    needs_meta = {"responses": {"trial": int, "subject": int, "stimulus": str}}
    waits_for_subscribers = True

    def setup(self) -> None:
        model_path = self.config.model.path
        self.model_path = Path(model_path) if model_path else self.out / "model.npz"
        self.stimuli = load_stimulus_set(self.config.stimuli.path)
        self.stimulus_ids = frozenset(self.stimuli.ids)
        self.n_voxels: dict[int, int] = {}  # per subject, from its first calibration response
        self.model: DecodingModel | None = None
        self.training: subprocess.Popen | None = None
        if model_path and not self.model_path.is_file():  # never fitted and written there
            raise NodeError(f"decode: [model] path {model_path} does not exist")
        if self.model_path.is_file():
            self._load_model()
        if self.model is None:
            self.n_subjects = len(self.config.acquire.streams) or 2
        self.participants: set[int] | None = None  # from acquire's "participants" event
        self.calibration: dict[int, tuple[str, dict[int, np.ndarray]]] = {}
        self.calibration_bad: dict[int, set[int]] = {}
        self.decoded_trials: set[int] = set()
        self.pending: dict[int, PendingTrial] = {}
        self.last_calibration = time.monotonic()
        timing = self.config.timing
        # Wait at most one TR (wall time) for the other participants of a trial.
        self.wait_s = timing.tr_s / timing.time_scale
        self.grace_s = CALIBRATION_GRACE_TR * self.wait_s + CALIBRATION_GRACE_S
        train_runs = [p.index for p in plan_runs(self.config) if p.phase == "train"]
        self.last_train_run = max(train_runs) if train_runs else None
        self.calibration_deadline = math.inf
        self.store = CalibrationStore(self.out / "calibration")
        if self.model is None:
            self._pick_up_calibration()

    def _pick_up_calibration(self) -> None:
        """Read back the calibration responses an earlier decode process stored."""
        stored, problems = self.store.load()
        for problem in problems:
            self.count("unreadable_calibration_files")
            self.log.warning("decode: stored calibration response %s; not used", problem)
        for r in stored:
            if r.pattern is None:
                self.calibration_bad.setdefault(r.trial, set()).add(r.subject)
            else:
                self.n_voxels.setdefault(r.subject, r.pattern.size)
                self.calibration.setdefault(r.trial, (r.stimulus, {}))[1][r.subject] = r.pattern
        if stored:
            self.count("calibration_responses", sum(r.pattern is not None for r in stored))
            self.log.info(
                "decode: picked up %d stored calibration responses (%d trials)",
                len(stored),
                len({r.trial for r in stored}),
            )
        if self.store.ended:
            self.calibration_deadline = time.monotonic() + self.grace_s

    def _load_model(self) -> None:
        try:
            self.model = load_decoding_model(self.model_path)
        except (OSError, ValueError) as err:
            raise NodeError(f"decode: {err}") from None
        self.n_subjects = len(self.model.n_voxels)
        # the model's subject k is the k-th subject it was fitted on (calibration.npz says which)
        self.model_subjects = list(range(self.n_subjects))
        dataset = self.out / "calibration.npz"
        if dataset.is_file() and not self.config.model.path:
            try:
                fitted = [int(s) for s in load_dataset(dataset).meta.get("subjects", [])]
            except (OSError, ValueError, TypeError) as err:
                raise NodeError(f"decode: {err}") from None
            if len(fitted) == self.n_subjects:
                self.model_subjects = fitted
        fitted_on = self.model.meta.get("preprocess")
        session = dict(self.config.preprocess)
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
        if msg.topic == "events":
            self._handle_event(msg)
            return
        if msg.kind != "response" or len(msg.arrays) != 1:
            self.count("ignored")
            return
        meta = msg.meta
        trial, subject, phase = int(meta["trial"]), int(meta["subject"]), meta.get("phase")
        problem = self._unusable(subject, meta["stimulus"], msg.arrays[0], phase)
        if problem:
            self.count("unusable_responses")
            if self.counters["unusable_responses"] == 1:
                self.log.warning(
                    "decode: trial %d subject %d: %s; skipped (further ones are only counted)",
                    trial,
                    subject,
                    problem,
                )
            return
        if meta.get("bad"):
            self.count("bad_responses")
            self.log.warning(
                "decode: trial %d subject %d is bad (%s); left out", trial, subject, meta["bad"]
            )
            if phase == "test" and trial in self.decoded_trials:
                return
            if phase == "test":
                self._pending(trial, meta).bad.append(f"subject {subject}: {meta['bad']}")
            elif phase == "train" and self.model is None:  # accounted for: need not wait for it
                self.calibration_bad.setdefault(trial, set()).add(subject)
                self.store.add(trial, subject, str(meta["stimulus"]), None, str(meta["bad"]))
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
            if self.model is not None or self.training is not None:
                self.count("late_calibration_responses")
                return
            self.n_voxels.setdefault(subject, pattern.size)
            self.calibration.setdefault(trial, (meta["stimulus"], {}))[1][subject] = pattern
            self.store.add(trial, subject, str(meta["stimulus"]), pattern, None)
            self.count("calibration_responses")
            self.last_calibration = time.monotonic()
        elif phase == "test":
            entry = self._pending(trial, meta)
            entry.responses[subject] = pattern
            entry.arrival_lsl = max(entry.arrival_lsl, float(meta.get("arrival_lsl") or 0.0))

    def _unusable(self, subject: int, stimulus: str, pattern: np.ndarray, phase: object) -> str:
        """Why a response cannot be used ('' when it can): a stimulus not in the set (its latent,
        which calibration fits to and the report compares with, is unknown), or a pattern that is
        not one vector of the subject's first calibration response's width (it would break the
        fit)."""
        if stimulus not in self.stimulus_ids:
            return f"stimulus {stimulus[:40]!r} is not in the stimulus set"
        width = self.n_voxels.get(subject)
        if pattern.ndim != 1 or (phase == "train" and width not in (None, pattern.size)):
            return f"a pattern of shape {pattern.shape[:3]}, expected ({width or 'n_voxels'},)"
        return ""

    def _handle_event(self, msg: Message) -> None:
        """``run_end`` of the last calibration run; acquire's ``participants``."""
        meta = msg.meta
        if msg.kind == "run_end" and meta.get("run") == self.last_train_run:
            if self.model is None and not math.isfinite(self.calibration_deadline):
                self.store.mark_ended()
                self.calibration_deadline = time.monotonic() + self.grace_s
                self.log.info(
                    "decode: the calibration run ended; fitting within %.2f s", self.grace_s
                )
        elif msg.kind == "participants" and isinstance(meta.get("subjects"), list):
            try:
                self.participants = {int(s) for s in meta["subjects"]}
            except (TypeError, ValueError):
                self.count("bad_events")
                return
            if self.model is None:
                self.n_subjects = len(self.participants)

    def _pending(self, trial: int, meta: dict) -> PendingTrial:
        if trial not in self.pending:
            self.pending[trial] = PendingTrial(str(meta["stimulus"]), time.monotonic())
        return self.pending[trial]

    def tick(self) -> None:
        if self.model is None:
            over = time.monotonic() >= self.calibration_deadline
            if self.training is None and (
                over or self._calibration_complete() or self._calibration_over()
            ):
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
        index = {s: k for k, s in enumerate(self.model_subjects)}
        try:
            latent = self.model.predict(
                {index[s]: r for s, r in entry.responses.items() if s in index}
            )
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
        n_train = self.config.stimuli.n_train
        trials = set(self.calibration) | set(self.calibration_bad)
        wanted = self.participants
        complete = 0
        for t in trials:
            have = set(self.calibration.get(t, ("", {}))[1]) | self.calibration_bad.get(t, set())
            complete += (have >= wanted) if wanted is not None else (len(have) >= self.n_subjects)
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
        settle = CALIBRATION_SETTLE_S if self.config.replay is not None else 0.0
        return time.monotonic() - self.last_calibration >= settle

    def _calibration_subjects(self) -> list[int]:
        """The participants a complete calibration trial has (see the module docstring)."""
        if self.participants is not None:
            return sorted(self.participants)
        seen = {s for _, r in self.calibration.values() for s in r}
        return sorted(seen.union(*self.calibration_bad.values()))

    def _calibrate(self) -> None:
        """Fit the model from the complete calibration trials with ``bci-train``, then load it."""
        subjects = self._calibration_subjects()
        trials = [
            t
            for t in sorted(self.calibration)
            if all(
                s in self.calibration[t][1] and np.isfinite(self.calibration[t][1][s]).all()
                for s in subjects
            )
        ]
        scheduled = self.config.stimuli.n_train
        if len(trials) < MIN_CALIBRATION_TRIALS or not subjects:
            raise NodeError(
                f"decode: only {len(trials)} of {scheduled} calibration trials are complete "
                f"(a usable response from each of subjects {subjects}); a model needs at least "
                f"{MIN_CALIBRATION_TRIALS} and there is none at {self.model_path}"
            )
        if len(trials) < scheduled:
            self.log.warning(
                "decode: fitting on the %d of %d calibration trials that are complete",
                len(trials),
                scheduled,
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
                "preprocess": dict(self.config.preprocess),
            },
        )
        model = self.config.model
        cmd = [
            sys.executable,
            "-m",
            "bci.train",
            str(data),
            "--out",
            str(self.model_path),
            "--aligner",
            model.aligner,
            "--alphas",
            *map(str, model.alphas),
        ]
        if model.n_components:
            cmd += ["--n-components", str(model.n_components)]
        self.log.info(
            "decode: fitting the model on %d calibration trials: %s", len(trials), " ".join(cmd)
        )
        self.training = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.fitted_subjects = subjects
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
        self.model_subjects = list(self.fitted_subjects)
        self._announce_model()
        # Test trials that waited for the model are not late: restart their clocks.
        now = time.monotonic()
        for entry in self.pending.values():
            entry.first_arrival = now
        return True


NODE = DecodeNode
