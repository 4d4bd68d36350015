"""The training status file: what the background trainer is doing, for the app (and anyone) to read.

``training/status.json`` is rewritten whole under a temporary name and renamed, so a reader never sees
half of it. It is only ever written by the holder of the pipeline lock; when nobody holds that lock, a
method still marked as training belongs to a run that died, and ``read_status`` says so.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mmr.config import Settings
from mmr.training.locks import is_held

QUEUED, RUNNING, DONE, FAILED, SKIPPED, INTERRUPTED = "queued", "training", "done", "failed", "skipped", "interrupted"


@dataclass
class MethodStatus:
    state: str = QUEUED
    stage: str = ""  # the progress bar's label: "stage1 epoch 3", "teacher texts", ...
    done: float = 0.0
    total: float | None = None
    started: float | None = None
    finished: float | None = None
    seconds: float | None = None
    dev_mrr_at_10: float | None = None
    error: str = ""  # one line: the exception, or why it was skipped
    log_line: str = ""  # the log's last line when it failed
    log: str = ""  # path of the method's full log
    command: str = ""  # what to run to train it again by hand

    @property
    def fraction(self) -> float | None:
        return min(1.0, self.done / self.total) if self.total else None


@dataclass
class PipelineStatus:
    pid: int = field(default_factory=os.getpid)
    started: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    finished: float | None = None
    methods: dict[str, MethodStatus] = field(default_factory=dict)
    # before the first method: the shared training data (rendering openclipart, its image features)
    preparing: MethodStatus | None = None
    alive: bool = True  # set by read_status: whether a trainer holds the pipeline lock now

    def active(self) -> list[str]:
        return [name for name, m in self.methods.items() if m.state in (QUEUED, RUNNING)]


def status_path(settings: Settings) -> Path:
    return settings.training_dir / "status.json"


def pipeline_lock_path(settings: Settings) -> Path:
    return settings.training_dir / "pipeline.lock"


def write_status(settings: Settings, status: PipelineStatus) -> None:
    status.updated = time.time()
    path = status_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = asdict(status)
    payload.pop("alive")
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.replace(path)


def read_status(settings: Settings) -> PipelineStatus | None:
    """The last status written, None if no trainer ever ran here; a dead run's unfinished methods are
    marked interrupted."""
    try:
        raw = json.loads(status_path(settings).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    methods = {name: MethodStatus(**fields) for name, fields in raw.pop("methods", {}).items()}
    preparing = raw.pop("preparing", None)
    status = PipelineStatus(**raw, methods=methods, preparing=MethodStatus(**preparing) if preparing else None)
    status.alive = is_held(pipeline_lock_path(settings))
    if not status.alive:
        for method in status.methods.values():
            if method.state in (QUEUED, RUNNING):
                method.state = INTERRUPTED
                method.error = method.error or "the trainer stopped before this method finished"
    return status
