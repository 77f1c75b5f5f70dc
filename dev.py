#!/usr/bin/env python3
"""Set up and run Trinity Processes with nothing but Python 3.11+.

    python3 dev.py up      create .venv, install, start the product (http://127.0.0.1:8080)
    python3 dev.py test    create .venv, install with test tools, run the whole check

Installation is skipped when pyproject.toml has not changed since the last run.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may be started by an older python3
        print("Trinity Processes needs Python 3.11 or newer", file=sys.stderr)
        return 2
    command = argv[0] if argv else "help"
    rest = argv[1:]
    if command == "up":
        ensure_env(extras="")
        return run([str(BIN / "trinity"), "up", *rest])
    if command == "test":
        ensure_env(extras="test")
        return run_checks(rest)
    if command == "trinity":
        ensure_env(extras="")
        return run([str(BIN / "trinity"), *rest])
    print(__doc__)
    return 0 if command == "help" else 2


def ensure_env(extras: str) -> None:
    """Create the virtual environment and install the project into it when needed."""
    if not PY.exists():
        print("creating .venv …", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    stamp = VENV / f".installed-{extras or 'base'}-{digest}"
    if stamp.exists():
        return
    target = f".[{extras}]" if extras else "."
    print(f"installing {target} into .venv (first run only) …", flush=True)
    subprocess.check_call([str(PY), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
                          cwd=ROOT)
    subprocess.check_call([str(PY), "-m", "pip", "install", "--quiet", "-e", target], cwd=ROOT)
    for old in VENV.glob(f".installed-{extras or 'base'}-*"):
        old.unlink()
    stamp.touch()


def run_checks(pytest_args: list[str]) -> int:
    """ruff, mypy (strict on engine/), then pytest; the first failure stops the run."""
    steps = [
        ("ruff", [str(PY), "-m", "ruff", "check", "."]),
        ("mypy", [str(PY), "-m", "mypy"]),
        ("pytest", [str(PY), "-m", "pytest", *pytest_args]),
    ]
    for name, cmd in steps:
        print(f"== {name}", flush=True)
        code = run(cmd)
        if code == 5 and name == "pytest":
            print("pytest collected no tests: that is a failure here", file=sys.stderr)
            return 1
        if code != 0:
            return code
    return 0


def run(cmd: list[str]) -> int:
    try:
        return subprocess.call(cmd, cwd=ROOT)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
