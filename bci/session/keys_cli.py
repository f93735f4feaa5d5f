"""``bci-keys DIR MACHINE...``: make the CURVE keys of a session that spans machines.

Run it on the supervisor's machine. It writes the session's key pair into DIR (once; later runs
add machines and keep it), and for each MACHINE (name it as the config's ``[nodes.NAME] host``)
a folder DIR/MACHINE to copy to that machine for ``bci-node --keys``; its public key goes into
DIR/authorized, the machines the supervisor admits. Set ``[bus] keys = "DIR"`` in the config.
Revoke a machine by deleting DIR/authorized/MACHINE.key.

Examples
--------
    bci-keys keys 192.168.1.20
    scp -r keys/192.168.1.20 gpu-server:bci-keys
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bci.bus.curve import create_keys
from bci.bus.security import BusConfigError


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``bci-keys``."""
    p = argparse.ArgumentParser(
        prog="bci-keys",
        description=__doc__.split("\n\n")[0].replace("``", ""),
        epilog="examples:\n" + __doc__.split("--------\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("directory", type=Path, metavar="DIR", help="the session's keys folder")
    p.add_argument("machines", nargs="+", metavar="MACHINE", help="one name per remote machine")
    args = p.parse_args(argv)
    try:
        folders = create_keys(args.directory, args.machines)
    except (BusConfigError, OSError) as err:
        print(f"bci-keys: {err}", file=sys.stderr)
        return 2
    for folder in folders:
        print(f"copy {folder} to {folder.name} and pass it as bci-node --keys")
    return 0


if __name__ == "__main__":
    sys.exit(main())
