"""Start the real app (``python app.py``) in a subprocess against the built index_store.

The app gets its own data folder (ratings database, uploads) per test module, and can be
restarted to prove that nothing acknowledged is lost.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mmr.config import REPO_ROOT, Settings

CHROMIUM = "/usr/bin/chromium"
# Flags for a sandboxed machine with no network beyond the package registries.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO_ROOT / "test-artifacts"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningApp:
    data_dir: Path
    port: int = field(default_factory=_free_port)
    process: subprocess.Popen | None = None
    log_path: Path | None = None
    # e.g. MMR_INDEX_STORE for an app on a store of its own; by default the app trains nothing in the
    # background (the tests that watch it train turn it on)
    extra_env: dict[str, str] = field(default_factory=dict)
    repo: Path = REPO_ROOT  # the checkout whose app.py runs (a clean copy, for the Spaces test)
    script: str = "app.py"  # or a launcher around it (oauth_stub_app.py)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "ratings.sqlite"

    def start(self, timeout: float = 300) -> None:  # generous: model loading on a busy 2-core CI machine
        env = {
            **os.environ,
            "MMR_DATA_DIR": str(self.data_dir),
            "GRADIO_SERVER_PORT": str(self.port),
            "GRADIO_SERVER_NAME": "127.0.0.1",
            "HF_HUB_OFFLINE": "1",
            "GRADIO_ANALYTICS_ENABLED": "False",
            "MMR_TRAIN_IN_BACKGROUND": "0",
            # Gradio serves whatever lies in its temp folder; the tests' own gradio_client downloads into the
            # default one on this same machine, so the app gets a folder of its own
            "GRADIO_TEMP_DIR": str(self.data_dir / "gradio-tmp"),
            **self.extra_env,
        }
        env.pop("MMR_DB", None)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / f"app-{int(time.time() * 1000)}.log"
        log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, self.script], cwd=self.repo, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"app exited early:\n{self.log_path.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(self.url, timeout=2)
                return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"app did not answer within {timeout}s:\n{self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash or an out-of-memory kill."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


def _index_store_ready() -> bool:
    settings = Settings()
    return (settings.indexes_dir / "zeroshot-verbal" / "stamps" / "params.json").exists()


@pytest.fixture(scope="session")
def running_app(tmp_path_factory):
    """One app on the built index_store for every module that needs it (starting one takes a while on 2
    cores); each test names its own queries, raters and sessions, so they share its database safely."""
    if not _index_store_ready():
        pytest.fail("index_store/ is not built: run `python -m mmr build` (make test does it)")
    app = RunningApp(tmp_path_factory.mktemp("app-data"))
    app.start()
    yield app
    app.stop()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (make test does it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def api(running_app):
    from gradio_client import Client

    return Client(running_app.url, verbose=False)


@pytest.fixture(scope="module")
def cast(api):
    """Raters and sessions for the attack tests (tests/app/attack_cast.py)."""
    from tests.app.attack_cast import build_cast

    return build_cast(api)
