"""`mmr status` reads the trainer's status file."""

from __future__ import annotations

from typer.testing import CliRunner

from mmr.cli import app
from mmr.config import Settings
from mmr.training.status import FAILED, MethodStatus, PipelineStatus, write_status


def test_status_lists_each_method_and_what_to_run_for_a_failure(tmp_path, monkeypatch):
    monkeypatch.setenv("MMR_INDEX_STORE", str(tmp_path))
    runner = CliRunner()
    assert "no trainer has run" in runner.invoke(app, ["status"]).output
    failed = MethodStatus(state=FAILED, error="OSError: disk full", command="python -m mmr train marvel")
    write_status(Settings(), PipelineStatus(methods={"marvel": failed}))
    output = runner.invoke(app, ["status"]).output
    assert "not running" in output
    assert "marvel" in output and "OSError: disk full" in output and "python -m mmr train marvel" in output
