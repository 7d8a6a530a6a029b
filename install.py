"""Set sd-img2img up (a virtual environment, the right torch, this package and its test tools), then run it.

    python3 install.py demo    set up what the demo needs, then serve it on http://127.0.0.1:7860
    python3 install.py test    set up the demo and the test tools, then run what CI runs: ruff check,
                               ruff format --check, then pytest
    python3 install.py         set up only (with the test tools, unless --no-test)

Arguments after the command go to pytest (`python3 install.py test tests/plan/test_rules.py -k plan`) or to app.py
(`python3 install.py demo --port 7861`); options go before it. Without a --model the demo serves SD-Turbo
(stabilityai/sd-turbo, downloaded once from the hub, its progress on the page and here) where the hub answers, else
the tiny random-weight model (`--model random`: offline, its pictures are noise), saying why in one line.

Where: inside an active virtual environment, into that one (as `python install.py` always did); otherwise into
.venv in this repository, created if missing, the script then running itself again with .venv's python.
--no-venv installs into the Python that runs the script, whatever it is (a conda environment, a container's).

What: torch first, because PyPI's Linux torch wheels are CUDA builds (several GB with their nvidia-* packages) that
a plain `pip install -e .` takes even without a GPU. Where there is no NVIDIA GPU (or with --cpu) the CPU build
comes from a wheel pip already has (its find-links, no index asked), else from PyTorch's CPU index; a torch that is
already installed is kept. Then `pip install -e .` for the demo, `pip install -e ".[test]"` with the test tools
(pytest, Playwright, ruff, Ray Serve, gradio's MCP extra: several hundred MB the demo does not need). Once done, it is
skipped while pyproject.toml stays the same and nothing it lists is missing, so a second run goes straight to the
demo or the tests.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv"
STAMP = "sd-img2img-install.txt"  # in the virtual environment: what was installed, from which pyproject.toml


def say(message: str) -> None:
    print(f"[install.py] {message}", flush=True)


def run(cmd: list[str], check: bool = True) -> bool:
    """Runs `cmd`, echoed; a failure ends the script with its command unless `check` is False."""
    print("+", " ".join(cmd), flush=True)
    code = subprocess.run(cmd).returncode
    if code and check:
        raise SystemExit(f"[install.py] failed (exit status {code}): {' '.join(cmd)}")
    return code == 0


def hand_over(cmd: list[str]) -> int:
    """Runs `cmd` in place of this process, so its exit status is ours and Ctrl-C or a kill reaches it directly."""
    print("+", " ".join(cmd), flush=True)
    if os.name == "nt":  # no real exec on Windows
        return subprocess.run(cmd).returncode
    os.execv(cmd[0], cmd)


def venv_python(venv: Path = VENV) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def python_to_use(prefix: str, base_prefix: str, no_venv: bool, venv: Path = VENV) -> Path | None:
    """The virtual environment's python to run this script again with, or None to install with this Python.

    Args:
        prefix: `sys.prefix` of the running Python.
        base_prefix: its `sys.base_prefix`; the two differ inside a virtual environment, which is then used.
        no_venv: install into the running Python whatever it is.
        venv: the virtual environment to use (created if missing) outside one.
    """
    if no_venv or prefix != base_prefix:
        return None
    return venv_python(venv)


def make_venv(python: Path) -> None:
    if python.exists():
        say(f"using the virtual environment {VENV}")
        return
    say(f"creating a virtual environment in {VENV} (Python {sys.version.split()[0]})")
    if not run([sys.executable, "-m", "venv", str(VENV)], check=False):
        shutil.rmtree(VENV, ignore_errors=True)
        raise SystemExit("[install.py] could not create .venv (on Debian or Ubuntu: apt-get install python3-venv)")


def has_nvidia_gpu() -> bool:
    return shutil.which("nvidia-smi") is not None or Path("/proc/driver/nvidia/version").exists()


def pip(*args: str, check: bool = True) -> bool:
    return run([sys.executable, "-m", "pip", "install", "-q", *args], check=check)


def install_torch(cpu: bool) -> None:
    if importlib.util.find_spec("torch") is not None:
        say("torch is already installed: kept")
        return
    say(f"installing torch's {'CPU build' if cpu else 'CUDA build (an NVIDIA GPU is present)'}")
    if not cpu:
        pip("torch")
        return
    # a CPU wheel pip already has (its --find-links), without asking any index, else PyTorch's CPU index; then
    # torch's own requirements (filelock, sympy, …) from the usual index, the torch installed staying as it is
    if not pip("--no-index", "--no-deps", "torch", check=False):
        pip("--no-deps", "torch", "--index-url", CPU_INDEX)
    pip("torch")


def missing_requirements(requirements: list[str], test: bool) -> list[str]:
    """The names in `requirements` (as `importlib.metadata.requires` gives them) with no installed distribution.

    Args:
        requirements: e.g. `["torch>=2.1", 'pytest>=8; extra == "test"']`.
        test: whether those of the `test` extra count; other markers are not read (their names are checked).
    """
    missing = []
    for req in requirements:
        if "extra ==" in req and not (test and re.search(r"extra == ['\"]test['\"]", req)):
            continue
        name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", req.strip()).group()
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    return missing


def stamp_text(test: bool, here: Path = HERE) -> str:
    """What an install records: the target (with the test tools or not) and pyproject.toml's hash."""
    target = f"{here}[test]" if test else str(here)
    return f"{target} {hashlib.sha256((here / 'pyproject.toml').read_bytes()).hexdigest()}\n"


def stamp_serves(recorded: str | None, wanted: str, test: bool) -> bool:
    """The install `recorded` (a stamp's text) is the one `wanted`, or one with the test tools where a demo's will do."""
    return recorded == wanted or (not test and recorded == wanted.replace(" ", "[test] ", 1))


def reason_to_install(stamp: Path, wanted: str, test: bool) -> str | None:
    """Why this environment needs installing into, or None when it holds sd-img2img as `wanted` says (the stamp's
    text; an install with the test tools also serves a demo) with everything the installed metadata asks for."""
    # not the sd_img2img.egg-info an editable install leaves in this folder, which is on sys.path as the script's
    installed = importlib.metadata.distributions(name="sd-img2img", path=[p for p in sys.path if Path(p) != HERE])
    dist = next(iter(installed), None)
    if dist is None:
        return "sd-img2img is not installed here yet"
    if not stamp_serves(stamp.read_text() if stamp.exists() else None, wanted, test):
        return "pyproject.toml or the extras changed since the last install"
    missing = missing_requirements(dist.requires or [], test)
    return f"missing: {', '.join(missing)}" if missing else None


def install(cpu: bool, test: bool) -> None:
    """torch, then this package (editable, with its test tools if `test`), unless both are installed and current."""
    target = f"{HERE}[test]" if test else str(HERE)
    wanted = stamp_text(test)
    stamp = Path(sys.prefix) / STAMP
    in_venv = sys.prefix != sys.base_prefix  # a stamp only there: never written into a system Python
    reason = reason_to_install(stamp, wanted, test) if in_venv else "outside a virtual environment, pip decides"
    if reason is None:
        say("torch and sd-img2img are installed and current (pyproject.toml unchanged): nothing to install")
        return
    say(f"installing ({reason})")
    install_torch(cpu)
    say(f"installing sd-img2img from {HERE} (editable{', with its test tools' if test else ''})")
    pip("-e", target)
    if in_venv:
        stamp.write_text(wanted)
    import torch  # fails here, not in the demo, if the install is broken

    say(f"installed: torch {torch.__version__}, sd-img2img {importlib.metadata.version('sd-img2img')}")


def demo_command(args: list[str]) -> list[str]:
    """app.py with `args` (no --model: the demo's default, SD-Turbo where the hub answers, else random weights)."""
    return [sys.executable, str(HERE / "app.py"), *args]


def run_tests(args: list[str]) -> int:
    """What CI runs: ruff check and ruff format --check (stopping at a failure), then pytest with `args`."""
    say("running the checks CI runs: ruff check ., ruff format --check ., then pytest")
    for cmd in (["check", "."], ["format", "--check", "."]):
        if not run([sys.executable, "-m", "ruff", *cmd], check=False):
            say("ruff failed: `ruff format .` fixes the formatting, `ruff check --fix .` much of the rest")
            return 1
    return hand_over(pytest_command(args))


def pytest_command(args: list[str], cores: int | None = None) -> list[str]:
    """`python -m pytest -q ARGS`, without the -q where ARGS set the verbosity (-q twice hides the summary line), on
    one pytest-xdist worker per core (at most 4, each test file whole on one worker) unless ARGS say how many
    (`-n 0`: one process)."""
    sets_verbosity = any(re.fullmatch(r"-[qv]+|--quiet|--verbose", a) for a in args)
    cores = cores or os.cpu_count() or 1
    sets_workers = any(re.fullmatch(r"-n\d*|--numprocesses(=.*)?|--dist(=.*)?", a) for a in args)
    workers = [] if sets_workers or cores < 2 else ["-n", str(min(cores, 4)), "--dist", "loadfile"]
    return [sys.executable, "-m", "pytest", *([] if sets_verbosity else ["-q"]), *workers, *args]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="install.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--cpu", action="store_true", help="install torch's CPU build even where there is a GPU")
    p.add_argument(
        "--no-test", action="store_true", help="set up only: leave out the test tools (demo never installs them)"
    )
    p.add_argument("--no-venv", action="store_true", help="install into the Python running this script")
    p.add_argument("command", nargs="?", choices=["demo", "test"], help="what to run once set up (default: nothing)")
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS", help="passed on to pytest (test) or app.py (demo)")
    args = p.parse_args(argv)
    if args.args[:1] == ["--"]:
        args.args = args.args[1:]
    if args.command == "test" and args.no_test:
        p.error("`test` needs the test tools: drop --no-test")
    return args


def wants_test_tools(args: argparse.Namespace) -> bool:
    """`test` installs the test tools, `demo` only what the demo needs; setting up alone, the tools unless --no-test."""
    return args.command == "test" or (args.command is None and not args.no_test)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if sys.version_info < (3, 10):  # noqa: UP036 — run by any python3, before there is a venv
        raise SystemExit(f"[install.py] sd-img2img needs Python 3.10 or newer; this is {sys.version.split()[0]}")
    python = python_to_use(sys.prefix, sys.base_prefix, args.no_venv)
    if python is not None:
        make_venv(python)
        return hand_over([str(python), str(Path(__file__).resolve()), *argv])
    say(f"environment: {sys.prefix} (Python {sys.version.split()[0]})")
    install(cpu=args.cpu or not has_nvidia_gpu(), test=wants_test_tools(args))
    os.chdir(HERE)
    if args.command == "test":
        return run_tests(args.args)
    if args.command == "demo":
        say("serving the demo (Ctrl-C stops it); no --model: SD-Turbo where the hub answers, else random weights")
        return hand_over(demo_command(args.args))
    say("set up. Next: `python3 install.py demo` (the demo) or `python3 install.py test` (the tests)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
