"""The render node: latents in, uint8 images out, on the best device there is.

At the session's start it renders the stimulus set and publishes it for the display
(``images``, kind ``stimuli``, in chunks). During the session it renders every decoded latent
(``latents``), batching whatever is waiting, and publishes each image for the live display
(``images.display``, kind ``reconstruction``) with the metadata that came with its latent, so the
display can stamp the closed-loop latency. In evolve mode it renders each generation
(``generations``, kind ``generation``: ``(n, latent_dim)`` latents, ``meta={"generation", "ids"}``)
into one ``images`` message (kind ``stimuli``, same meta), which the display presents and the
in-silico neurons respond to.
"""

from __future__ import annotations

import numpy as np
import torch

from bci.bus import Message
from bci.bus.topics import GENERATIONS, IMAGES, IMAGES_DISPLAY, LATENTS
from bci.generators import load
from bci.nodes.base import Node, NodeError
from bci.stimulus_set import load_stimulus_set

STIMULUS_CHUNK = 16


class RenderNode(Node):
    """Hold the generator; render stimuli at start and reconstructions as they come."""

    name = "render"
    topics = (LATENTS, GENERATIONS)
    poll_ms = 20.0
    waits_for_subscribers = True

    def setup(self) -> None:
        spec = self.config.generator
        if spec.cpu_threads:
            # One thread renders a small batch fastest on a machine the other nodes share.
            torch.set_num_threads(spec.cpu_threads)
        try:
            self.generator = load(
                spec.spec,
                device=None if spec.device == "auto" else spec.device,
                precision=spec.precision,
                batch_size=spec.batch_size,
            )
        except (OSError, ValueError, RuntimeError) as err:
            raise NodeError(f"render: cannot load generator {spec['spec']!r}: {err}") from None
        self.stimuli = load_stimulus_set(self.config.stimuli.path)
        if self.stimuli.latent_dim != self.generator.latent_dim:
            raise NodeError(
                f"render: the stimulus latents are {self.stimuli.latent_dim}-d but generator "
                f"{spec['spec']!r} takes {self.generator.latent_dim}-d latents"
            )
        evolve = self.config.session.mode == "evolve"
        n = 0 if evolve else self.config.stimuli.n_train + self.config.stimuli.n_test
        if n > len(self.stimuli):
            raise NodeError(
                f"render: the schedule needs {n} stimuli but the set has {len(self.stimuli)}"
            )
        self.n_scheduled = n
        self.generator.render(self.stimuli.latents[:1])  # warm up (allocations, kernels)
        self.pending: list[Message] = []
        self.next_stimulus = 0
        self.log.info("render: %r on %s", self.generator, self.generator.device)

    def start(self) -> None:
        super().start()
        self.publisher.wait_for_subscribers(IMAGES, timeout_ms=10_000)
        self.next_stimulus = 0

    def _publish_stimulus_chunk(self) -> None:
        """Render and publish the next chunk of stimuli (one chunk per loop keeps heartbeats)."""
        first = self.next_stimulus
        last = min(first + STIMULUS_CHUNK, self.n_scheduled)
        images = self.generator.render(self.stimuli.latents[first:last])
        self.publish(
            IMAGES,
            [images],
            kind="stimuli",
            meta={"ids": list(self.stimuli.ids[first:last]), "first": first},
        )
        self.next_stimulus = last
        self.count("stimuli_rendered", last - first)

    def handle(self, msg: Message) -> None:
        if msg.topic == GENERATIONS and msg.kind == "generation" and len(msg.arrays) == 1:
            self._render_generation(msg)
        elif msg.topic == LATENTS and msg.kind == "latent" and len(msg.arrays) == 1:
            self.pending.append(msg)
        else:
            self.count("ignored")

    def _render_generation(self, msg: Message) -> None:
        """Render one generation and publish it as stimuli, with the generation's metadata."""
        latents, ids = msg.arrays[0], msg.meta.get("ids")
        if not isinstance(ids, list) or len(ids) != len(latents):
            self.count("bad_generations")
            self.log.error("render: generation message without one id per latent; skipped")
            return
        try:
            images = self.generator.render(latents)
        except ValueError as err:
            self.count("bad_generations")
            self.log.error("render: skipped generation %s: %s", msg.meta.get("generation"), err)
            return
        self.publish(IMAGES, [images], kind="stimuli", meta=msg.meta, lsl_time=msg.lsl_time)
        self.count("generations_rendered")
        self.count("rendered", len(images))

    def tick(self) -> None:
        if self.started and self.next_stimulus < self.n_scheduled:
            self._publish_stimulus_chunk()
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        try:
            images = list(self.generator.render(np.stack([m.arrays[0] for m in batch])))
        except ValueError:  # one bad latent must not cost the others of its batch theirs
            batch, images = self._render_one_by_one(batch)
        for msg, image in zip(batch, images, strict=True):
            self.publish(
                IMAGES_DISPLAY,
                [image],
                kind="reconstruction",
                meta=msg.meta,
                lsl_time=msg.lsl_time,
            )
        self.count("rendered", len(batch))

    def _render_one_by_one(self, batch: list[Message]) -> tuple[list[Message], list[np.ndarray]]:
        """Render each latent of ``batch`` alone; the ones that cannot be are counted, skipped."""
        kept, images = [], []
        for msg in batch:
            try:
                images.append(self.generator.render(msg.arrays[0][np.newaxis])[0])
            except ValueError as err:
                self.count("bad_latents")
                self.log.error(
                    "render: skipped the latent of trial %s: %s", msg.meta.get("trial"), err
                )
                continue
            kept.append(msg)
        return kept, images


NODE = RenderNode
