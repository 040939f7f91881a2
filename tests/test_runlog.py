import json

from llmcourse.utils.runlog import RunLog
from llmcourse.viz.training import LivePlot


def test_runlog_writes_one_json_line_per_event(tmp_path):
    path = tmp_path / "run" / "log.jsonl"
    with RunLog(path, append=False) as log:
        log.write(step=1, loss=2.5)
        log.write(step=2, loss=float("nan"), note="diverged")
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["loss"] == 2.5
    records = RunLog.read(path)
    assert records[1]["loss"] is None and records[1]["note"] == "diverged"
    assert all("time_s" in r for r in records)


def test_a_half_written_last_line_is_skipped(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"step": 1, "loss": 3.0}\n{"step": 2, "lo')
    assert RunLog.read(path) == [{"step": 1, "loss": 3.0}]


def test_only_rank_zero_writes(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    log = RunLog(tmp_path / "log.jsonl")
    log.write(step=1)
    log.close()
    assert not (tmp_path / "log.jsonl").exists()


def test_liveplot_records_outside_notebooks():
    plot = LivePlot()
    for step in range(3):
        plot.update(step, train_loss=3.0 - step, val_loss=None)
    plot.close()
    assert plot.history["train_loss"] == [(0, 3.0), (1, 2.0), (2, 1.0)]
    assert "val_loss" not in plot.history
