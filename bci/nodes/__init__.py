"""The session's processes: simulate, acquire, decode, render, display, record (and evolve)."""
