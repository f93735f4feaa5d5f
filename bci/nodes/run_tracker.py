"""Which scanner run each volume, trigger and trial belongs to, and what each run delivered.

Pure bookkeeping, no LSL and no bus: the acquire node feeds it. Times are on one clock.

Runs come from the display's ``run`` markers (stamped with the run's first trigger, naming the
volumes the run lasts). A recording without them (made by another program, or before runs were
marked) has its runs found in the data: a new run begins at a volume that follows a pause longer
than :data:`RUN_GAP_PERIODS` typical volume intervals, or at a change of the stimulus phase.
Nothing depends on the order in which the streams deliver: the report is computed from the
times, whenever it is asked for.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

RUN_GAP_PERIODS = 3.0
"""A pause longer than this many typical volume intervals separates two runs."""


@dataclass
class DeclaredRun:
    """A run as its marker declares it."""

    index: int
    phase: str
    start: float
    volumes: int | None
    period: float | None

    @property
    def end(self) -> float:
        """When its last volume's interval ends (inf when the marker gave no volume count)."""
        if self.volumes and self.period:
            return self.start + self.volumes * self.period
        return math.inf


@dataclass
class RunTracker:
    """Per-run counts of a session (see the module docstring).

    Parameters
    ----------
    subjects : list of int
        The participants whose volumes are counted.
    tolerance_s : float
        Stamps this much before a run's first trigger still belong to the run.
    """

    subjects: list[int]
    tolerance_s: float = 0.0
    declared: list[DeclaredRun] = field(default_factory=list)
    volumes: dict[int, list[float]] = field(default_factory=dict)
    triggers: list[float] = field(default_factory=list)
    trials: list[tuple[float, str]] = field(default_factory=list)
    bad: list[tuple[float, str]] = field(default_factory=list)
    censored: list[tuple[int, float, str]] = field(default_factory=list)

    def start_run(
        self, index: int, phase: str, start: float, volumes: int | None, period: float | None
    ) -> None:
        """A ``run`` marker: run ``index`` began at ``start`` (its first trigger)."""
        if any(r.index == index for r in self.declared):
            return
        self.declared.append(DeclaredRun(int(index), str(phase), float(start), volumes, period))
        self.declared.sort(key=lambda r: r.start)

    def add_volumes(self, subject: int, times: np.ndarray) -> None:
        """Volumes received for ``subject`` (their stamps)."""
        self.volumes.setdefault(subject, []).extend(np.asarray(times, dtype=float).tolist())

    def add_trigger(self, t: float) -> None:
        """A scanner trigger at ``t``."""
        self.triggers.append(float(t))

    def add_trial(self, onset: float, phase: str) -> None:
        """A stimulus marker."""
        self.trials.append((float(onset), str(phase)))

    def declared_run_at(self, t: float) -> DeclaredRun | None:
        """The declared run that ``t`` falls in (the last one started by ``t``), or None."""
        found = None
        for run in self.declared:
            if run.start - self.tolerance_s <= t:
                found = run
        return found

    # -- the runs --------------------------------------------------------------------------------
    def _inferred_starts(self) -> list[tuple[float, str]]:
        """Run starts found in the volumes and the phase markers (no run markers).

        The pauses are looked for in one participant's volumes (the one with the most), since
        two streams' stamps interleave closely.
        """
        longest = max(self.volumes.values(), key=len, default=[])
        times = np.sort(np.asarray(longest, dtype=float))
        starts: list[float] = []
        if times.size:
            starts.append(float(times[0]))
            diffs = np.diff(times)
            positive = diffs[diffs > 1e-6]
            if positive.size:
                typical = float(np.median(positive))
                cuts = np.flatnonzero(diffs > RUN_GAP_PERIODS * typical) + 1
                starts += [float(times[i]) for i in cuts]
        out = []
        for start in starts:
            phases = [p for t, p in self.trials if t >= start - self.tolerance_s]
            out.append((start, phases[0] if phases else ""))
        # a phase change inside a segment (no pause between the runs) also starts a run
        trials = sorted(self.trials)
        for (t_prev, p_prev), (t, p) in zip(trials, trials[1:], strict=False):
            if p != p_prev and not any(t_prev < s <= t for s, _ in out):
                out.append((t, p))
        return sorted(out)

    def run_starts(self) -> list[tuple[float, str, int | None]]:
        """``(start, phase, declared volumes or None)`` of every run, in time order."""
        if self.declared:
            return [(r.start, r.phase, r.volumes) for r in self.declared]
        return [(t, p, None) for t, p in self._inferred_starts()]

    def run_of(self, t: float, starts: list[float] | None = None) -> int:
        """Index of the run ``t`` falls in (0 before the first run starts)."""
        starts = [s for s, _, _ in self.run_starts()] if starts is None else starts
        k = int(np.searchsorted(np.asarray(starts) - self.tolerance_s, t, side="right")) - 1
        return max(k, 0)

    def add_bad(self, onset: float, reason: str) -> None:
        """A response that could not be used, with its reason."""
        self.bad.append((float(onset), str(reason)))

    def add_censored(self, subject: int, t: float, reason: str) -> None:
        """A volume of ``subject`` stamped ``t`` that the preprocessing censored, and why."""
        self.censored.append((int(subject), float(t), str(reason)))

    def report(self) -> list[dict[str, Any]]:
        """Per run: phase, start, trials, volumes received and censored per subject, triggers,
        expected."""
        runs = self.run_starts()
        if not runs:
            return []
        starts = np.asarray([s for s, _, _ in runs]) - self.tolerance_s
        edges = [*starts.tolist(), math.inf]

        def per_run(times: list[float]) -> list[int]:
            t = np.asarray(times, dtype=float)
            counts = np.histogram(t, bins=[-math.inf, *edges[1:]])[0] if t.size else []
            return [int(c) for c in counts] if len(counts) else [0] * len(runs)

        volumes = {s: per_run(self.volumes.get(s, [])) for s in self.subjects}
        triggers = per_run(self.triggers)
        trials = per_run([t for t, _ in self.trials])
        bad: dict[int, Counter] = {}
        for onset, reason in self.bad:
            k = int(np.searchsorted(starts, onset, side="right")) - 1
            bad.setdefault(max(k, 0), Counter())[reason] += 1
        censored: dict[int, dict[str, Counter]] = {}
        for subject, t, reason in self.censored:
            k = max(int(np.searchsorted(starts, t, side="right")) - 1, 0)
            censored.setdefault(k, {}).setdefault(str(subject), Counter())[reason] += 1
        out = []
        for k, (start, phase, declared) in enumerate(runs):
            expected = triggers[k] if triggers[k] else declared
            out.append(
                {
                    "run": k,
                    "phase": phase,
                    "start_lsl": round(float(start), 6),
                    "trials": trials[k],
                    "triggers": triggers[k],
                    "volumes_expected": expected,
                    "volumes_received": {str(s): volumes[s][k] for s in self.subjects},
                    "bad_responses": dict(bad.get(k, {})),
                    "censored_volumes": {
                        s: dict(c) for s, c in sorted(censored.get(k, {}).items())
                    },
                }
            )
        return out
