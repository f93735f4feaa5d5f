"""The bci-session supervisor: configs, node processes, the session folder and its summary."""
