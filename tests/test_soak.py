"""The soak script's CI mode: the app on loopback serves every request of a short soak without errors."""

import json
import subprocess
import sys

from appserver import ROOT


def test_short_soak(tmp_path):
    report_path = tmp_path / "soak.json"
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
    report = json.loads(report_path.read_text())
    assert report["errors"] == 0 and report["served"] == report["requests"] == 16
    assert report["latency_p95_s"] < 30  # no request hangs behind another (a tiny-model run takes well under 1 s)
    assert report["tmp_end_mb"] - report["tmp_start_mb"] < 20  # run files stay bounded
    assert report["fds_end"] <= report["fds_start"] + 32  # no descriptor left open per request
    assert "served 16/16 requests" in proc.stdout
