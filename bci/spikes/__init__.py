"""Spikes from a rig's streams: causal band-pass, threshold crossings, binning, event samples."""

from bci.spikes.bandpass import BandPass
from bci.spikes.binning import SpikeBinner
from bci.spikes.event_samples import EventParseError, parse_event_samples
from bci.spikes.matching import match_spikes
from bci.spikes.threshold import ThresholdDetector

__all__ = [
    "BandPass",
    "EventParseError",
    "SpikeBinner",
    "ThresholdDetector",
    "match_spikes",
    "parse_event_samples",
]
