"""Run every benchmark, print the table, write bench/results/latest.json.

python -m bench.run [--quick] [--only GROUP]
"""

from __future__ import annotations

import argparse
import logging
import sys

from bench import (
    calls_bench,
    containment_bench,
    deploy_bench,
    disk_bench,
    mqtt_bench,
    reload_bench,
    soak_bench,
    startup_bench,
    webload_bench,
)
from bench.common import Figure, print_table, write_results

SUITES = {
    "calls": calls_bench.run,
    "containment": containment_bench.run,
    "deploy": deploy_bench.run,
    "disk": disk_bench.run,
    "mqtt": mqtt_bench.run,
    "reload": reload_bench.run,
    "soak": soak_bench.run,
    "startup": startup_bench.run,
    "webload": webload_bench.run,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer runs per figure")
    parser.add_argument("--only", choices=sorted(SUITES), action="append")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    figures: list[Figure] = []
    for name in args.only or SUITES:
        print(f"== {name}", file=sys.stderr, flush=True)
        figures += SUITES[name](quick=args.quick)
    print_table(figures)
    command = " ".join(["python -m bench.run", *sys.argv[1:]])
    print(f"\nwritten to {write_results(figures, command)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
