"""bci: a real-time, closed-loop brain-computer interface around a generative image model."""

__version__ = "0.1.0"
