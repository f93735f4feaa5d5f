"""Lab Streaming Layer plumbing below the nodes, the replay player and the scanner bridge.

:mod:`bci.lsl.streams` finds streams and opens inlets and outlets; :mod:`bci.lsl.markers` is the
JSON marker format the display sends.
"""
