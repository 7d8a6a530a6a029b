"""install.py, the set-up script: its help, its arguments and its decisions (no virtual environment is made here)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def install():
    spec = importlib.util.spec_from_file_location("install", ROOT / "install.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_help_names_the_two_commands():
    out = subprocess.run(
        [sys.executable, str(ROOT / "install.py"), "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "python3 install.py demo" in out and "python3 install.py test" in out
    assert ".venv" in out and "--no-venv" in out and "--cpu" in out


def test_test_without_test_tools_is_refused():
    run = subprocess.run(
        [sys.executable, str(ROOT / "install.py"), "--no-test", "test"], capture_output=True, text=True
    )
    assert run.returncode == 2 and "drop --no-test" in run.stderr


def test_arguments_after_the_command_are_passed_on(install):
    assert install.parse_args(["test", "-q", "tests/x.py"]).args == ["-q", "tests/x.py"]
    assert install.parse_args(["test", "--", "-k", "a or b"]).args == ["-k", "a or b"]
    args = install.parse_args(["--cpu", "demo", "--port", "7861"])
    assert (args.cpu, args.command, args.args) == (True, "demo", ["--port", "7861"])
    assert install.parse_args([]).command is None


def test_an_active_virtual_environment_is_used(install, tmp_path):
    venv = tmp_path / ".venv"
    assert install.python_to_use("/x/venv", "/usr", no_venv=False, venv=venv) is None
    assert install.python_to_use("/usr", "/usr", no_venv=True, venv=venv) is None
    python = install.python_to_use("/usr", "/usr", no_venv=False, venv=venv)
    assert python.parent.parent == venv and python.name.startswith("python")


def test_demo_serves_the_demos_default_unless_a_model_is_named(install):
    """No --model: app.py's own default (SD-Turbo where the hub answers, else random weights, saying why)."""
    assert install.demo_command([])[-1].endswith("app.py")
    assert install.demo_command(["--port", "7861"])[-3:] == [str(ROOT / "app.py"), "--port", "7861"]
    assert install.demo_command(["--model", "./sd15"])[-2:] == ["--model", "./sd15"]


def test_demo_installs_what_the_demo_needs_and_test_adds_the_test_tools(install, tmp_path):
    assert install.wants_test_tools(install.parse_args(["test"])) is True
    assert install.wants_test_tools(install.parse_args(["demo"])) is False
    assert install.wants_test_tools(install.parse_args([])) is True
    assert install.wants_test_tools(install.parse_args(["--no-test"])) is False
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    demo, test = install.stamp_text(False, tmp_path), install.stamp_text(True, tmp_path)
    assert demo.startswith(f"{tmp_path} ") and test.startswith(f"{tmp_path}[test] ")
    assert install.stamp_serves(test, demo, test=False)  # an install with the test tools serves the demo as it is
    assert not install.stamp_serves(demo, test, test=True)  # a demo's install lacks the test tools
    assert install.stamp_serves(demo, demo, test=False) and not install.stamp_serves(None, demo, test=False)
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'changed'\n")
    assert not install.stamp_serves(demo, install.stamp_text(False, tmp_path), test=False)


def test_missing_requirements(install):
    reqs = ["pytest>=8", "sd_parsers>=0.6", "no-such-dist-xyz>=1", 'ruff>=0.6; extra == "test"']
    reqs.append('no-such-test-dist-xyz; extra == "test"')
    assert install.missing_requirements(reqs, test=False) == ["no-such-dist-xyz"]
    assert install.missing_requirements(reqs, test=True) == ["no-such-dist-xyz", "no-such-test-dist-xyz"]


def test_pytest_is_quiet_unless_told_otherwise(install):
    assert install.pytest_command(["tests/x.py"], cores=1)[-3:] == ["pytest", "-q", "tests/x.py"]
    assert install.pytest_command(["-q", "tests/x.py"], cores=1)[-3:] == ["pytest", "-q", "tests/x.py"]
    assert install.pytest_command(["-vv", "-k", "a"], cores=1)[-4:] == ["pytest", "-vv", "-k", "a"]
    # one worker per core, at most 4, each file on one worker; unless the arguments say how many
    assert install.pytest_command([], cores=2)[-6:] == ["pytest", "-q", "-n", "2", "--dist", "loadfile"]
    assert install.pytest_command(["tests/x.py"], cores=16)[-5:-2] == ["-n", "4", "--dist"]
    assert install.pytest_command(["-n", "0", "tests/x.py"], cores=2)[-4:] == ["-q", "-n", "0", "tests/x.py"]
