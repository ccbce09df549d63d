"""bench/soak.py for two minutes: long-running clients through forced disconnects, key expiry and a
restart of the stack, under AWS's rules. Not in the default run (pyproject's addopts deselect the
`soak` marker): `pytest -m soak` runs it, as README says."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.soak, pytest.mark.slow, pytest.mark.mosquitto]

ROOT = Path(__file__).resolve().parent.parent


def test_two_minutes_of_long_running_clients_lose_nothing_die_never_and_stay_flat(tmp_path):
    report_file = tmp_path / "soak.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "soak.py"), "--minutes", "2", "--json",
                           str(report_file)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    report = json.loads(report_file.read_text())
    print(done.stdout)  # noqa: T201 - the table, for `pytest -m soak -s`
    assert report["senders_exit"] == [0, 0], done.stdout  # every message acknowledged by the broker
    assert report["lost"] == 0, done.stdout  # and each delivered to the persistent session
    assert report["died"] == [], done.stdout
    assert report["answered"] >= report["requests"] - 2, done.stdout  # but those around the restart
    assert report["closed_for_age"] >= 3, done.stdout
    assert report["reconnections"]["subscribe"] >= 3 and report["reconnections"]["tail"] >= 3, done.stdout
    for name, (start, end) in report["fds"].items():
        assert end <= start + 2, (name, done.stdout)
    for name, (start, end) in report["rss_kib"].items():  # clients, `iotnotify local`, Mosquitto
        assert end <= start * 1.25 + 8 * 1024, (name, done.stdout)
