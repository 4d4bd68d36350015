"""The training panel's text for each state a method can be in."""

from __future__ import annotations

from mmr.training.status import DONE, FAILED, INTERRUPTED, QUEUED, RUNNING, MethodStatus, PipelineStatus
from webui.training_panel import training_active, training_html


def _status(**methods) -> PipelineStatus:
    status = PipelineStatus(started=1000.0, methods={name.replace("_", "-"): m for name, m in methods.items()})
    status.alive = True
    return status


def test_a_running_method_shows_its_stage_and_a_bar_at_its_fraction():
    status = _status(
        procrustes=MethodStatus(state=DONE),
        marvel=MethodStatus(state=RUNNING, stage="stage 2-dpr", done=30, total=120, started=1100.0),
        ciea=MethodStatus(state=QUEUED),
    )
    html = training_html(status, loaded={"procrustes"}, now=1160.0)
    assert "1 of 3 methods done" in html
    assert "MARVEL</span>training · stage 2-dpr" in html and "30/120 · 60 s" in html
    assert 'style="width: 25.0%"' in html
    assert "CIEA</span>waiting to train" in html
    assert "Procrustes / least squares</span>" not in html, "a method already served is still listed"
    assert training_active(status)


def test_a_failure_shows_its_error_log_line_and_the_command_escaped():
    failed = MethodStatus(
        state=FAILED,
        error="ValueError: <bad> input",
        log_line="12:00:01 ERROR mmr.methods.lsr: dev set empty",
        log="/store/training/logs/lsr.log",
        command="python -m mmr train lsr",
    )
    html = training_html(_status(lsr=failed), loaded=set())
    assert "failed: ValueError: &lt;bad&gt; input" in html
    assert "dev set empty" in html and "/store/training/logs/lsr.log" in html
    assert "<code>python -m mmr train lsr</code>" in html


def test_nothing_to_say_once_every_method_is_served():
    status = _status(procrustes=MethodStatus(state=DONE))
    status.alive = False
    from mmr.retrievers import RETRIEVERS

    everything = {name for name, spec in RETRIEVERS.items() if spec.trainer}
    assert training_html(status, loaded=everything) == ""
    assert not training_active(status)


def test_an_interrupted_run_and_methods_never_trained_say_what_to_run():
    status = _status(
        marvel=MethodStatus(state=INTERRUPTED, error="the trainer stopped", command="python -m mmr train marvel")
    )
    status.alive = False
    html = training_html(status, loaded=set())
    assert "interrupted: the trainer stopped" in html
    assert "Not trained here:" in html and "python -m mmr train-all" in html
    assert training_html(None, loaded=set()).count("Not trained here:") == 1


def test_preparing_the_training_data_has_a_row_of_its_own():
    status = _status(procrustes=MethodStatus(state=QUEUED))
    status.preparing = MethodStatus(state=RUNNING, stage="openclipart", done=1424, total=2848, started=1000.0)
    html = training_html(status, loaded=set(), now=1090.0)
    assert "Training data</span>preparing · openclipart" in html and "1424/2848 · 90 s" in html
    assert 'style="width: 50.0%"' in html
