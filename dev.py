#!/usr/bin/env python3
"""Set up and run Trinity Processes with nothing but Python 3.11+.

    python3 dev.py up      create .venv, install, start the product (http://127.0.0.1:8080)
    python3 dev.py test    create .venv, install with test tools, run the whole check
                           (ARGS after `test` go to pytest; browser tests run separately)

Installation is skipped when pyproject.toml has not changed since the last run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
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
    """ruff, mypy (strict on engine/), then pytest; the first failure stops the run.

    pytest runs twice: the browser tests (tests/e2e, sync Playwright) cannot share a process
    with the asyncio tests. Paths among the arguments pick the run(s) they belong to."""
    for name, cmd in [("ruff", [str(PY), "-m", "ruff", "check", "."]),
                      ("mypy", [str(PY), "-m", "mypy"])]:
        print(f"== {name}", flush=True)
        code = run(cmd)
        if code != 0:
            return code
    runs = pytest_runs(pytest_args)
    collected_nothing = 0
    for name, args in runs:
        if name == "pytest tests/e2e":
            ensure_chromium()
        print(f"== {name}", flush=True)
        code = run([str(PY), "-m", "pytest", *args])
        if code == 5 and pytest_args:  # e.g. -k matched tests of the other run only
            print(f"{name}: no tests selected", flush=True)
            collected_nothing += 1
        elif code == 5:
            print("pytest collected no tests: that is a failure here", file=sys.stderr)
            return 1
        elif code != 0:
            return code
    if collected_nothing == len(runs):
        print("pytest collected no tests: that is a failure here", file=sys.stderr)
        return 1
    return 0


E2E = ROOT / "tests" / "e2e"
# pytest options whose value is the next argument (so it is not mistaken for a path)
VALUE_OPTIONS = {"-k", "-m", "-p", "-o", "-c", "-W", "-r", "--tb", "--timeout", "--deselect",
                 "--ignore", "--ignore-glob", "--rootdir", "--basetemp", "--maxfail",
                 "--durations", "--confcutdir", "--junitxml", "--output", "--screenshot",
                 "--browser", "--tracing", "--video", "--base-url", "--slowmo"}


def pytest_runs(args: list[str]) -> list[tuple[str, list[str]]]:
    """(title, pytest arguments) of each pytest run: everything but tests/e2e, then
    tests/e2e; only the run(s) the given paths belong to when there are paths."""
    options: list[str] = []
    main_paths: list[str] = []
    e2e_paths: list[str] = []
    for i, arg in enumerate(args):
        target = (ROOT / arg.split("::")[0]).resolve()
        if arg.startswith("-") or (i and args[i - 1] in VALUE_OPTIONS) or not target.exists():
            options.append(arg)
        elif target.is_relative_to(E2E):
            e2e_paths.append(arg)
        else:
            main_paths.append(arg)
            if E2E.is_relative_to(target):  # `tests` or `.`: e2e is not collected there
                e2e_paths.append(str(E2E.relative_to(ROOT)))
    runs = []
    if main_paths or not e2e_paths:
        runs.append(("pytest", [*options, *main_paths]))
    if e2e_paths or not main_paths:
        runs.append(("pytest tests/e2e", [*options, *(e2e_paths or ["tests/e2e"])]))
    return runs


def ensure_chromium() -> None:
    """The browser tests use Debian's chromium; install it when we can (root, apt-get).
    Without it they are skipped, with the reason in pytest's summary."""
    if os.environ.get("TRINITY_CHROMIUM") or Path("/usr/bin/chromium").exists() \
            or shutil.which("chromium") or shutil.which("chromium-browser"):
        return
    if not (shutil.which("apt-get") and Path("/etc/debian_version").exists()):
        print("no chromium found (and no apt-get): browser tests will be skipped; install "
              "Chromium or set TRINITY_CHROMIUM=/path/to/chromium", flush=True)
        return
    if os.geteuid() != 0:
        print("no chromium found: browser tests will be skipped; install it with "
              "`sudo apt-get install chromium`", flush=True)
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium",
               "fonts-liberation"]
    for attempt in ([install], [["apt-get", "update", "-q"], install]):
        print(f"installing Debian's chromium for the browser tests: "
              f"{' && '.join(' '.join(c) for c in attempt)}", flush=True)
        if all(subprocess.call(c, env=env) == 0 for c in attempt):
            return
    print("could not install chromium: browser tests will be skipped", flush=True)


def run(cmd: list[str]) -> int:
    try:
        return subprocess.call(cmd, cwd=ROOT)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
