"""The soak script's short mode: the app on loopback serves every request of a short soak without errors (~25 s on 2
cores: a long check, ``python -m pytest -m slow tests/project``)."""

import json
import subprocess
import sys

import pytest
from appserver import ROOT


@pytest.fixture(scope="module")
def soak(tmp_path_factory):
    """A short soak's report and printout: 16 requests from 3 clients, at most a minute."""
    report_path = tmp_path_factory.mktemp("soak") / "soak.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "soak.py"),
            "--requests",
            "16",
            "--minutes",
            "1",
            "--clients",
            "3",
            "--json",
            str(report_path),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(report_path.read_text()), proc.stdout


@pytest.mark.slow
def test_short_soak(soak):
    report, out = soak
    assert report["errors"] == 0 and report["served"] == report["requests"] == 16
    assert report["tmp_end_mb"] - report["tmp_start_mb"] < 20  # run files stay bounded
    assert report["fds_end"] <= report["fds_start"] + 32  # no descriptor left open per request
    assert "served 16/16 requests" in out


@pytest.mark.slow
def test_no_soak_request_waits_long(soak):
    report, _ = soak
    assert report["latency_p95_s"] < 30  # no request hangs behind another (a tiny-model run takes well under 1 s)
