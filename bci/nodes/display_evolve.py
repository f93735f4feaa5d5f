"""The display node in evolve mode: presents each generation as it is rendered, marks every flip.

Data flow
---------
``images`` (kind ``stimuli``, from render, ``meta={"ids": [...], "generation": k}``)
    One generation's images (its population and its reference images, in presentation order).
    Each is converted once to surfaces; the generation is queued as a block of trials.
``images.display`` (kind ``reconstruction``, LATEST: the generation's best image, rendered)
    Shown in the experimenter's panel beside the best so far, with the generation's mean and
    max response (the evolve node's ``fitness`` numbers, carried in the image's meta).
LSL marker stream ``[acquire] marker_stream``
    A JSON marker at every flip (``phase`` at a block's start, ``stimulus``, ``blank``), as in
    decode mode; trial numbers run on over the session's generations.
``events``
    The flips (kind ``flip``) and, after each block's last blank, ``block_done``.

A block is one :meth:`~bci.nodes.schedule.Schedule.block`: each image for ``[timing]
stimulus_s``, then a blank for ``isi_s`` (100 ms / 100 ms in the demo, as in the monkey
experiments). The next generation starts as soon as its images are buffered and the current
block is over. The evolve node, not the display, decides when the session is done.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

import pygame
from pylsl import local_clock

from bci.bus import Message, Publisher
from bci.bus.topics import IMAGES, IMAGES_DISPLAY
from bci.config import SessionConfig
from bci.nodes.display import IDLE_POLL_MS, DisplayNode
from bci.nodes.schedule import Schedule

BLOCK_PHASE = "evolve"
"""Phase written in the markers of every evolve trial."""


class EvolveDisplayNode(DisplayNode):
    """Show each rendered generation as a block of trials (see the module docstring)."""

    name = "display"
    topics = (IMAGES, IMAGES_DISPLAY)

    def __init__(self, config: SessionConfig, out: Path, publisher: Publisher) -> None:
        super().__init__(config, out, publisher)
        self.blocks: deque[tuple[int, list[str]]] = deque()
        self.block_end: float | None = None  # LSL time the current block's last blank ends
        self.generation: int | None = None
        self.next_trial = 0
        self.best_tile: pygame.Surface | None = None
        self.best_fitness = float("-inf")
        self.counters.update({"generations_shown": 0})

    def setup(self) -> None:
        """Open the window and the marker outlet; no schedule until a generation arrives."""
        self._open_screen()
        self.screen.draw_message("waiting for the first generation")
        self.screen.draw_status(self._status_lines())
        pygame.display.flip()
        timing = self.config.timing
        self.log.info(
            "evolve display: %.0f ms on, %.0f ms off (wall)",
            1000 * timing.stimulus_s / timing.time_scale,
            1000 * timing.isi_s / timing.time_scale,
        )

    # -- messages ------------------------------------------------------------------------------
    def handle(self, msg: Message) -> None:
        """Buffer a generation's images and queue its block; show the best image in the panel."""
        if msg.topic == IMAGES and msg.kind == "stimuli":
            self._queue_generation(msg)
        elif msg.topic == IMAGES_DISPLAY and msg.kind == "reconstruction":
            self._show_best(msg)
        else:
            self.count("ignored_messages")

    def _queue_generation(self, msg: Message) -> None:
        ids, generation = msg.meta.get("ids"), msg.meta.get("generation")
        images = msg.arrays[0] if len(msg.arrays) == 1 else None
        ok = images is not None and images.ndim == 4 and isinstance(ids, list)
        if not ok or len(ids) != len(images) or not isinstance(generation, int):
            self.count("bad_messages")
            self.log.warning("ignoring a malformed generation message (seq %d)", msg.seq)
            return
        try:
            for sid, image in zip(map(str, ids), images, strict=True):
                self.surfaces[sid] = self.screen.prepare_stimulus(image)
        except ValueError as err:
            self.count("bad_messages")
            self.log.warning("generation %d: %s; not shown", generation, err)
            return
        self.blocks.append((generation, [str(i) for i in ids]))

    def _show_best(self, msg: Message) -> None:
        meta = msg.meta
        try:
            tile = self.screen.prepare_reconstruction(msg.arrays[0])
        except (IndexError, ValueError) as err:
            self.count("bad_messages")
            self.log.warning(
                "ignoring the best image of generation %s: %s", meta.get("generation"), err
            )
            return
        best = meta.get("best_so_far")
        if isinstance(best, int | float) and best >= self.best_fitness:
            self.best_fitness, self.best_tile = float(best), tile
        title = (
            f"generation {meta.get('generation')}: mean {meta.get('mean', float('nan')):.1f}, "
            f"max {meta.get('max', float('nan')):.1f} (best so far {self.best_fitness:.1f})"
        )
        self.screen.draw_pair(
            title, self.best_tile, tile, captions=("best so far", "best of generation")
        )
        self.screen.draw_status(self._status_lines())  # shown with the next flip

    # -- time ----------------------------------------------------------------------------------
    def tick(self) -> None:
        """Window events; end the block that is over; start the next; present due frames."""
        self._pump_window()
        if self.finished or not self.started:
            return
        now = local_clock()
        if self.block_end is not None and now >= self.block_end:
            self._end_block()
        if self.schedule is None and self.blocks:
            self._start_block()
        if self.schedule is None:
            self.poll_ms = IDLE_POLL_MS
            return
        while frame := self.schedule.pop_frame(local_clock() - self.t0 + self.lead_s):
            self._present(frame)
        self.poll_ms = self._wait_ms(local_clock(), self.block_end)

    def _start_block(self) -> None:
        self.generation, ids = self.blocks.popleft()
        timing = self.config.timing
        self.schedule = Schedule.block(
            ids,
            first_trial=self.next_trial,
            phase=BLOCK_PHASE,
            stimulus_s=timing.stimulus_s,
            isi_s=timing.isi_s,
            time_scale=timing.time_scale,
        )
        self.next_trial += len(ids)
        self.t0 = local_clock() + self.frame_s  # first flip one frame from now
        self.block_end = self.t0 + self.schedule.duration
        self.log.info("generation %d: %d images", self.generation, len(ids))

    def _end_block(self) -> None:
        shown = self.schedule.stimulus_ids
        for sid in shown:
            self.surfaces.pop(sid, None)
        self.count("generations_shown")
        self.event("block_done", generation=self.generation, trials=len(shown))
        self.schedule, self.block_end = None, None

    def status(self) -> dict[str, Any]:
        """Heartbeat payload: the base display's, plus the generation on screen and the queue."""
        return {**super().status(), "generation": self.generation, "queued": len(self.blocks)}

    def _status_lines(self) -> list[str]:
        c = self.counters
        lines = [
            f"generation {self.generation} on screen" if self.schedule else "between generations",
            f"generations shown {c['generations_shown']} · queued {len(self.blocks)}",
            f"flips {c['flips']} · dropped frames {c['dropped_frames']}",
            f"vsync {'on' if self.vsync else 'off'} · {self.driver}",
        ]
        return lines


NODE = EvolveDisplayNode
