"""``python -m wasihost.boards.pi.safe_off``: drive the buzzer and fan relays off.

The host turns its relays off when it stops, even on an unhandled
exception (``atexit``). A process killed outright (SIGKILL, the OOM killer,
a crash in native code) runs no Python at all, and the kernel then leaves
a released line at its last level: a fan or buzzer could stay on. systemd
runs this from ``ExecStopPost=`` after every stop, however it happened.

It uses the same ``Relay`` the board uses: requesting a line drives it to
"off" for its polarity, closing leaves it off and releases it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wasihost.boards.pi.relay import Relay
from wasihost.config import DEFAULT_CONFIG_PATH, load_config
from wasihost.errors import WasihostError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wasihost.boards.pi.safe_off")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH)
    args = parser.parse_args(argv)
    try:
        pi = load_config(args.config).board.pi
    except WasihostError as exc:
        print(f"safe_off: {exc}", file=sys.stderr)
        return 2
    failed = False
    for device, pin, active_low in (
        ("buzzer", pi.buzzer_pin, pi.buzzer_active_low),
        ("fan", pi.fan_pin, pi.fan_active_low),
    ):
        relay = Relay(device, device, pi.gpio_chip, pin, active_low)
        problem = relay.problem()
        if problem is not None:
            print(f"safe_off: {problem.message()}", file=sys.stderr)
            failed = True
        relay.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
