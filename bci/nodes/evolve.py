"""The evolve node: an ask/tell optimiser whose fitness is the measured neural response (XDream).

Loop, one generation at a time::

    ask -> publish ``generations`` -> (render -> display -> neurons -> acquire) -> ``responses``
        -> tell -> checkpoint -> publish ``fitness`` (and the best latent on ``latents``) -> ask

Published
---------
``generations`` (kind ``generation``)
    ``arrays=[float32 (n, latent_dim)]``: the population and ``[evolve] n_reference`` reference
    latents (the first stimuli of the stimulus set, scored but not optimised, as XDream does),
    shuffled together; ``meta={"generation", "ids", "reference"}`` with one id per row
    (``g003-07`` for population member 7 of generation 3, ``g003-ref1`` for a reference) and a
    flag per row saying which rows are references.
``fitness`` (kind ``fitness``)
    ``arrays=[population fitness (n_pop,), reference responses (n_ref,)]`` in spikes/s (NaN
    where no response came), ``meta={"generation", "mean", "max", "reference_mean",
    "best_so_far", "missing"}``.
``latents`` (kind ``latent``)
    The generation's best latent, so the render node draws it for the experimenter's panel.
``events``
    ``schedule_done`` after the last generation, which ends the session.

Fitness of an image: the acquire node's response (mean count per bin in the window, minus the
baseline) times the stream's bin rate, i.e. the evoked firing rate in spikes/s, of the target
sites (:mod:`bci.evolve.site_choice`): ``[evolve] unit`` is a site, a list of sites (their mean),
-1 (the mean over all) or ``"best"``.

Probe block (``unit = "best"``): before generation 0, the first ``probe_images`` stimuli of the
set are shown ``probe_repeats`` times each, shuffled, as one block (``generation`` -1, ids
``probe-03-r1``); the site with the most reliable evoked response is the target from then on.
The choice and every site's probe response are written to ``evolve/probe.json`` (the summary
reports them), and a resumed session keeps that choice.

A generation is told once every image has a response, or ``response_timeout_s`` after the
display has shown it, with NaN for what is missing (logged); the optimisers leave NaN out of
selection.

Checkpoints: after every generation, ``evolve/checkpoint.npz`` in the session folder
holds the optimiser's state and the history; a node started on a folder that has one continues
from the next generation (``bci-session --mode evolve --resume SESSION_DIR``).
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import numpy as np

from bci.bus import Message
from bci.bus.topics import EVENTS, FITNESS, GENERATIONS, LATENTS, RESPONSES
from bci.config import SessionConfig
from bci.evolve import from_state_dict, make_optimizer
from bci.evolve.base import Optimizer
from bci.evolve.checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint
from bci.evolve.site_choice import PROBE, probe_scores, site_fitness, target_sites
from bci.nodes.base import Node, NodeError
from bci.stimulus_set import load_stimulus_set

NOT_SHOWN_S = 30.0
"""A generation the display has not shown this long after its block's length is given up."""
PROBE_GENERATION = -1
"""The generation number of the probe block's message."""


def make_session_optimizer(config: SessionConfig, latent_dim: int) -> Optimizer:
    """The optimiser a session config asks for (``[evolve]``)."""
    evo = config.evolve
    params: dict[str, Any] = {"random_state": evo.seed}
    if evo.population_size:
        params["population_size"] = evo.population_size
    if evo.optimizer == "genetic":
        params["preset"] = evo.preset
    elif evo.optimizer == "cmaes":
        params["sigma0"] = evo.sigma0
    return make_optimizer(evo.optimizer, latent_dim, **params)


class EvolveNode(Node):
    """Breed latents whose images drive the recorded unit harder (see the module docstring)."""

    name = "evolve"
    topics = (RESPONSES, EVENTS)
    poll_ms = 10.0
    needs_meta = {RESPONSES: {"stimulus": str, "rate_hz": (float, int)}}
    waits_for_subscribers = True

    def setup(self) -> None:
        evo = self.config.evolve
        try:
            stimuli = load_stimulus_set(self.config.stimuli.path)
        except (OSError, ValueError) as err:
            raise NodeError(f"evolve: {err}") from None
        if evo.n_reference > len(stimuli):
            raise NodeError(
                f"evolve: [evolve] n_reference = {evo['n_reference']} but the stimulus set has "
                f"{len(stimuli)} stimuli"
            )
        self.references = stimuli.latents[: evo.n_reference].astype(np.float32)
        self.reference_ids = list(stimuli.ids[: evo.n_reference])
        self.n_generations = int(evo.generations)
        self.unit = evo.unit
        self.probe_path = self.out / PROBE
        self.probe_latents = stimuli.latents[: evo.probe_images].astype(np.float32)
        self.sites: list[int] | None = None
        if self.unit == "best":
            if self.probe_path.is_file():  # resumed: keep the choice
                self.sites = json.loads(self.probe_path.read_text())["sites"]
        else:
            self.sites = target_sites(self.unit)
        self.timeout_s = float(evo.response_timeout_s)
        self.checkpoint = self.out / CHECKPOINT
        self.history: list[dict[str, Any]] = []
        try:
            self.optimizer = self._resume() or make_session_optimizer(
                self.config, stimuli.latent_dim
            )
        except ValueError as err:
            raise NodeError(f"evolve: {err}") from None
        self.current: dict[str, Any] | None = None
        self.done = False
        self.replay = self.config.replay is not None
        self.early: dict[str, Message] = {}
        timing = self.config.timing
        self.trial_s = (timing.stimulus_s + timing.isi_s) / timing.time_scale
        self.counters.update({"generations": len(self.history), "responses": 0, "missing": 0})
        self.log.info(
            "evolve: %s, population %d, %d references, %d generations%s",
            type(self.optimizer).__name__,
            self.optimizer.population_size,
            len(self.references),
            self.n_generations,
            f", resuming after generation {len(self.history) - 1}" if self.history else "",
        )

    def _resume(self) -> Optimizer | None:
        """The optimiser of the folder's checkpoint (and its history), or None without one."""
        try:
            saved = load_checkpoint(self.checkpoint)
        except FileNotFoundError:
            return None
        self.history = list(saved["history"])
        return from_state_dict(saved["optimizer"])

    def start(self) -> None:
        super().start()
        self.publisher.wait_for_subscribers(GENERATIONS, timeout_ms=10_000)
        if len(self.history) >= self.n_generations:
            self._finish()
        elif self.unit == "best" and self.sites is None:
            self._ask_probe()
        else:
            self._ask()

    # -- one generation ------------------------------------------------------------------------
    def _ask(self) -> None:
        """Ask the optimiser and publish the generation with the references, shuffled."""
        generation = len(self.history)
        population = self.optimizer.ask()
        ids = [f"g{generation:03d}-{i:02d}" for i in range(len(population))]
        ids += [f"g{generation:03d}-ref{j}" for j in range(len(self.references))]
        latents = np.concatenate([population, self.references]).astype(np.float32)
        order = np.random.default_rng([self.config.evolve.seed, generation]).permutation(len(ids))
        is_reference = [i >= len(population) for i in order]
        self._publish_block(generation, ids, latents, order, is_reference, population=population)
        for sid in ids:
            if sid in self.early:
                self._answer(self.current, sid, self.early.pop(sid))

    def _ask_probe(self) -> None:
        """Publish the probe block: each probe image ``probe_repeats`` times, shuffled."""
        evo = self.config.evolve
        n, repeats = len(self.probe_latents), int(evo.probe_repeats)
        ids = [f"probe-{i:02d}-r{r}" for r in range(repeats) for i in range(n)]
        latents = np.tile(self.probe_latents, (repeats, 1))
        order = np.random.default_rng([evo.seed, 999]).permutation(len(ids))
        self._publish_block(
            PROBE_GENERATION, ids, latents, order, [True] * len(ids), probe=True, patterns={}
        )
        self.log.info("evolve: probe block of %d images x %d repeats", n, repeats)

    def _publish_block(
        self,
        generation: int,
        ids: list[str],
        latents: np.ndarray,
        order: np.ndarray,
        reference: list[bool],
        **state: Any,
    ) -> None:
        """Make ``ids`` the current block (``state`` adds to it) and publish it in ``order``."""
        self.current = {
            "generation": generation,
            **state,
            "ids": ids,
            "values": dict.fromkeys(ids, math.nan),
            "answered": set(),
            # Live, the display says when a generation has been shown (block_done); a replay
            # has no display: the generation is due when its block would have ended.
            "shown_at": time.monotonic() + len(ids) * self.trial_s if self.replay else None,
            "published_at": time.monotonic(),
        }
        self.publish(
            GENERATIONS,
            [latents[order]],
            kind="generation",
            meta={"generation": generation, "ids": [ids[i] for i in order], "reference": reference},
        )

    def _finish_probe(self, current: dict[str, Any]) -> None:
        """Choose the target site from the probe block; write ``evolve/probe.json``."""
        patterns = [current["patterns"][i] for i in current["ids"] if i in current["patterns"]]
        try:
            result = probe_scores(np.stack(patterns) if patterns else np.empty((0, 1)))
        except ValueError as err:
            raise NodeError(f"evolve: cannot choose the best site: {err}") from None
        result["sites"] = [result["site"]]
        result["n_scheduled"] = len(current["ids"])
        self.probe_path.parent.mkdir(parents=True, exist_ok=True)
        self.probe_path.write_text(json.dumps(result, indent=1))
        self.sites = result["sites"]
        self.event("target_chosen", sites=self.sites, score=result["score"][result["site"]])
        self.log.info(
            "evolve: probe block chose site %d (t = %s, evoked %.1f spikes/s, %d trials)",
            result["site"],
            result["score"][result["site"]],
            result["evoked_hz"][result["site"]],
            result["n_trials"],
        )
        self.current = None

    def handle(self, msg: Message) -> None:
        current = self.current
        if msg.topic == EVENTS:
            if current and msg.kind == "block_done":
                if msg.meta.get("generation") == current["generation"]:
                    current["shown_at"] = time.monotonic()
            return
        if msg.kind != "response" or len(msg.arrays) != 1:
            self.count("ignored")
            return
        sid = str(msg.meta.get("stimulus"))
        if current is None or sid not in current["values"]:
            if self.replay and sid.startswith("g") and sid not in self.early:
                self.early[sid] = msg  # a replay delivers later generations' responses early
            else:
                self.count("stray_responses")
            return
        self._answer(current, sid, msg)

    def _answer(self, current: dict[str, Any], sid: str, msg: Message) -> None:
        """Take one image's response as its fitness (spikes/s; NaN for a bad response)."""
        if sid in current["answered"]:
            self.count("stray_responses")
            return
        current["answered"].add(sid)
        self.count("responses")
        if msg.meta.get("bad"):
            self.log.warning("evolve: response to %s is bad (%s); NaN", sid, msg.meta["bad"])
            return
        rate = float(msg.meta.get("rate_hz") or 1.0)
        pattern = np.asarray(msg.arrays[0], dtype=np.float64)
        if current.get("probe"):
            current["patterns"][sid] = pattern * rate
            return
        try:
            current["values"][sid] = site_fitness(pattern, self.sites) * rate
        except IndexError as err:
            self.count("bad_target")
            if self.counters["bad_target"] == 1:
                self.log.error("evolve: %s; NaN", err)

    def tick(self) -> None:
        current = self.current
        if current is None or self.done:
            return
        now = time.monotonic()
        complete = len(current["answered"]) == len(current["values"])
        timed_out = current["shown_at"] is not None and now - current["shown_at"] > self.timeout_s
        # Never shown (a node died and was restarted meanwhile): give up on it in the end.
        waited = now - current["published_at"]
        if (
            current["shown_at"] is None
            and waited > len(current["ids"]) * self.trial_s + NOT_SHOWN_S
        ):
            self.log.warning(
                "evolve: generation %d was not shown within %.0f s; told with what came",
                current["generation"],
                waited,
            )
            timed_out = True
        if (complete or timed_out) and current.get("probe"):
            self._finish_probe(current)
            self._ask()
        elif complete or timed_out:
            self._tell(current)
            if len(self.history) >= self.n_generations:
                self._finish()
            else:
                self._ask()

    def _tell(self, current: dict[str, Any]) -> None:
        """Tell the optimiser, keep the history, checkpoint, publish fitness and the best latent."""
        generation, population = current["generation"], current["population"]
        n_pop = len(population)
        values = [current["values"][i] for i in current["ids"]]
        fitness = np.array(values[:n_pop], dtype=np.float64)
        reference = np.array(values[n_pop:], dtype=np.float64)
        missing = int(np.isnan(fitness).sum() + np.isnan(reference).sum())
        if missing:
            self.count("missing", missing)
            self.log.warning(
                "evolve: generation %d: %d of %d responses missing after %.1f s; NaN",
                generation,
                missing,
                len(values),
                self.timeout_s,
            )
        self.optimizer.tell(population, fitness)
        valid = fitness[np.isfinite(fitness)]
        best_index = int(np.nanargmax(fitness)) if valid.size else 0
        record = {
            "generation": generation,
            "fitness": fitness,
            "reference": reference,
            "latents": population.astype(np.float32),
            "mean": float(valid.mean()) if valid.size else math.nan,
            "max": float(valid.max()) if valid.size else math.nan,
            "reference_mean": float(np.nanmean(reference))
            if np.isfinite(reference).any()
            else math.nan,
            "best_latent": population[best_index].astype(np.float32),
            "missing": missing,
        }
        self.history.append(record)
        save_checkpoint(
            self.checkpoint,
            {"optimizer": self.optimizer.state_dict(), "history": self.history},
        )
        self.count("generations")
        meta = {k: record[k] for k in ("generation", "mean", "max", "reference_mean", "missing")}
        meta["best_so_far"] = float(self.optimizer.best_fitness)
        self.publish(FITNESS, [fitness, reference], kind="fitness", meta=meta)
        self.publish(LATENTS, [record["best_latent"]], kind="latent", meta=meta)
        self.log.info(
            "evolve: generation %d: mean %.2f, max %.2f, references %.2f (spikes/s)",
            generation,
            record["mean"],
            record["max"],
            record["reference_mean"],
        )
        self.current = None

    def _finish(self) -> None:
        self.done = True
        self.event(
            "schedule_done",
            generations=len(self.history),
            best_fitness=float(self.optimizer.best_fitness),
        )
        self.log.info("evolve: %d generations done", len(self.history))

    def status(self) -> dict[str, Any]:
        """Heartbeat payload: counters, generation, best fitness so far."""
        history = getattr(self, "history", [])  # heartbeats start before setup
        best = self.optimizer.best_fitness if history else None
        return {**super().status(), "generation": len(history), "best_fitness": best}


NODE = EvolveNode
