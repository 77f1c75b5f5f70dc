"""`python -m app.cli worker` with what-if experiments applied first (bench/experiments.py).

    python -m bench.worker_variant --experiment write-lock [--experiment …]

Environment as for the real worker (DATABASE_URL, REDIS_URL, TRINITY_*).
"""

from __future__ import annotations

import argparse
import sys

from bench.experiments import EXPERIMENTS, apply_experiments


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.worker_variant")
    p.add_argument("--experiment", action="append", default=[], choices=sorted(EXPERIMENTS))
    args = p.parse_args()
    apply_experiments(args.experiment)
    from app.cli import main as cli_main

    return cli_main(["worker"])


if __name__ == "__main__":
    sys.exit(main())
