"""Topic policies: defaults of the project's topics, dotted-prefix lookup, overrides."""

from __future__ import annotations

from bci.bus import DEFAULT_REGISTRY, Policy, TopicRegistry, heartbeat_topic
from bci.bus import topics as t


def test_project_topics_have_the_documented_policies() -> None:
    every = [t.RESPONSES, t.LATENTS, t.GENERATIONS, t.FITNESS, t.IMAGES, t.EVENTS, t.CONTROL]
    assert all(DEFAULT_REGISTRY.policy(name) is Policy.EVERY for name in every)
    assert DEFAULT_REGISTRY.policy(t.IMAGES_DISPLAY) is Policy.LATEST
    assert DEFAULT_REGISTRY.policy(heartbeat_topic("render")) is Policy.LATEST
    assert heartbeat_topic("render") == "heartbeat.render"


def test_longest_dotted_prefix_wins_and_unknown_is_every() -> None:
    registry = TopicRegistry({"images.display.small": Policy.EVERY})
    assert registry.policy("images.display.small.x") is Policy.EVERY
    assert registry.policy("images.display.big") is Policy.LATEST
    assert registry.policy("images.other") is Policy.EVERY
    assert registry.policy("imagesx") is Policy.EVERY  # not a dotted prefix
    assert registry.policy("something.new") is Policy.EVERY


def test_register_overrides_and_clears_cache() -> None:
    registry = TopicRegistry()
    assert registry.policy("latents.preview") is Policy.EVERY
    registry.register("latents.preview", Policy.LATEST)
    assert registry.policy("latents.preview") is Policy.LATEST
    assert registry.as_dict()["latents.preview"] == "latest"
    assert DEFAULT_REGISTRY.policy("latents.preview") is Policy.EVERY  # others untouched
