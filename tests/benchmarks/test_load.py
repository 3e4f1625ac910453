"""The load benchmark's command line: its bounds, loopback only, a tiny real run, Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.load.cli import LIMITS, check_url, main
from benchmarks.load.runner import child_pids

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "url",
    [
        "ws://0.0.0.0:8080/v1/realtime",
        "ws://example.com:8080/v1/realtime",
        "ws://localhost:8080/v1/realtime",
        "ws://10.0.0.1:8080/v1/realtime",
        "wss://127.0.0.1:8080/v1/realtime",
        "http://127.0.0.1:8080/v1/realtime",
        "ws://127.0.0.1/v1/realtime",
    ],
)
def test_only_a_loopback_server_is_a_target(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--url", url, "--no-idle"]) == 2
    assert "127.0.0.1" in capsys.readouterr().err


def test_a_loopback_url_is_accepted_and_its_path_checked() -> None:
    assert check_url("ws://127.0.0.1:9/v1/realtime") == "ws://127.0.0.1:9/v1/realtime"
    with pytest.raises(ValueError, match="/realtime"):
        check_url("ws://127.0.0.1:9/v1/other")


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--levels", "0"], "--levels"),
        (["--levels", str(LIMITS["sessions"] + 1)], "--levels"),
        (["--levels", ",".join(["1"] * (LIMITS["levels"] + 1))], "--levels"),
        (["--levels", "two"], "--levels"),
        (["--idle", str(LIMITS["idle"] + 1)], "--idle"),
        (["--turns", "0"], "--turns"),
        (["--turns", str(LIMITS["turns"] + 1)], "--turns"),
        (["--spread", "-1"], "--spread"),
        (["--silence-ms", "50"], "--silence-ms"),
        (["--turn-timeout", "0"], "--turn-timeout"),
        (["--max-minutes", str(LIMITS["minutes"] + 1)], "--max-minutes"),
        (["--no-idle", "--no-ramp"], "nothing to do"),
        (["--server-pid", "1"], "--server-pid"),
        (["--url", "ws://127.0.0.1:9/v1/realtime"], "--server-pid"),
    ],
)
def test_out_of_bounds_values_are_refused_by_name(
    args: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    assert named in capsys.readouterr().err


@pytest.mark.models
@pytest.mark.slow
def test_a_tiny_real_run_measures_and_leaves_nothing_running(tmp_path: Path) -> None:
    report = tmp_path / "load.json"
    before = set(child_pids(os.getpid()))
    assert main(["--levels", "1", "--turns", "1", "--idle", "1,2", "--json", str(report)]) == 0
    data = json.loads(report.read_text())
    [level] = data["levels"]
    [turn] = level["turns"]
    assert turn["status"] == "completed"
    assert 0 < turn["voice_to_voice_s"] < 60
    assert turn["heard"] and turn["reply"]
    means = level["stage_mean_s"]  # the server's own stage times over the level
    assert {"voice_to_voice", "llm"} <= set(means) and all(v > 0 for v in means.values())
    assert [m["sessions"] for m in data["idle"]] == [1, 2]
    assert all(m["server_mib"] > 50 and m["tree_mib"] >= m["server_mib"] for m in data["idle"])
    assert data["summary"]["idle_rss_ratio"]["of"] == [2, 1]
    assert set(child_pids(os.getpid())) <= before  # the server child is gone


@pytest.mark.models
@pytest.mark.slow
def test_ctrl_c_stops_the_server_child_and_exits_130() -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    bench = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.load", "--levels", "1", "--turns", "3", "--no-idle"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert bench.stderr is not None
        server_pid = 0
        for line in bench.stderr:
            found = re.search(r"parley serve \(pid (\d+)\)", line)
            if found:
                server_pid = int(found.group(1))
                break
        assert server_pid, "the benchmark did not start its server"
        time.sleep(3)  # into the warm-up turn
        bench.send_signal(signal.SIGINT)
        assert bench.wait(90) == 130
        assert "interrupted" in bench.stderr.read()
        deadline = time.monotonic() + 30
        while Path(f"/proc/{server_pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not Path(f"/proc/{server_pid}").exists()
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait(10)


def test_stage_means_come_from_the_metrics_added_during_a_level() -> None:
    from benchmarks.load.stages import parse_stage_totals, stage_means

    def text(stt: tuple[float, int], llm: tuple[float, int], v2v: tuple[float, int]) -> str:
        return "\n".join(
            [
                "# HELP parley_serve_stage_seconds Latency each stage reports",
                'parley_serve_stage_seconds_bucket{le="0.05",stage="stt"} 0.0',
                f'parley_serve_stage_seconds_sum{{stage="stt"}} {stt[0]}',
                f'parley_serve_stage_seconds_count{{stage="stt"}} {stt[1]}',
                f'parley_serve_stage_seconds_sum{{stage="llm"}} {llm[0]}',
                f'parley_serve_stage_seconds_count{{stage="llm"}} {llm[1]}',
                f"parley_serve_voice_to_voice_seconds_sum {v2v[0]}",
                f"parley_serve_voice_to_voice_seconds_count {v2v[1]}",
                "parley_serve_turns_total 3.0",
            ]
        )

    before = parse_stage_totals(text((1.0, 4), (2.0, 4), (5.0, 4)))
    assert before == {"stt": (1.0, 4.0), "llm": (2.0, 4.0), "voice_to_voice": (5.0, 4.0)}
    after = parse_stage_totals(text((1.6, 6), (2.0, 4), (8.0, 6)))
    assert stage_means(before, after) == pytest.approx({"stt": 0.3, "voice_to_voice": 1.5})
    assert stage_means({}, {}) == {}
