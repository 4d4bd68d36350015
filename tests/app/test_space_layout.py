"""What a Hugging Face Space needs of the repo as it is: front matter, entry file, packages, a data setting."""

from __future__ import annotations

import shutil
import subprocess
from importlib.metadata import version

import pytest
import yaml
from gradio_client import Client

from mmr.config import REPO_ROOT, Settings
from tests.app.conftest import RunningApp

HARDWARE = {"cpu-basic", "cpu-upgrade", "t4-small", "t4-medium", "l4x1", "a10g-small", "a10g-large", "a100-large"}


def front_matter() -> dict:
    text = (REPO_ROOT / "README.md").read_text()
    assert text.startswith("---\n"), "README.md has no front matter: Spaces reads its settings from it"
    return yaml.safe_load(text.split("---\n")[1])


def test_front_matter_names_what_spaces_needs():
    meta = front_matter()
    assert meta["sdk"] == "gradio"
    assert meta["sdk_version"] == version("gradio"), "the Space would run another Gradio than requirements.txt"
    assert (REPO_ROOT / meta["app_file"]).is_file()
    assert isinstance(meta["python_version"], str) and meta["python_version"].startswith("3.")
    assert meta["suggested_hardware"] in HARDWARE
    # building the indexes takes minutes before the app answers; training goes on after it does
    assert str(meta["startup_duration_timeout"]).endswith(("m", "h"))


def test_packages_txt_holds_the_runtime_debian_packages_of_setup():
    setup = (REPO_ROOT / "scripts" / "setup.sh").read_text()
    listed = setup.split("DEBIAN_PACKAGES=(")[1].split(")")[0].split()
    packages = (REPO_ROOT / "packages.txt").read_text().split()
    assert sorted(packages) == sorted(listed)


def test_the_data_directory_is_one_setting_and_the_start_line_says_if_it_lasts(monkeypatch, tmp_path):
    monkeypatch.setenv("SPACE_ID", "someone/mmr")
    monkeypatch.delenv("MMR_DATA_DIR", raising=False)
    monkeypatch.delenv("MMR_DB", raising=False)
    ephemeral = Settings()
    assert ephemeral.data_dir == REPO_ROOT / "data"
    assert "LOST when the Space restarts" in ephemeral.storage_line()
    monkeypatch.setenv("MMR_DATA_DIR", str(tmp_path / "bucket"))
    mounted = Settings()
    assert mounted.db_path == tmp_path / "bucket" / "ratings.sqlite"
    assert mounted.uploads_dir == tmp_path / "bucket" / "uploads"
    assert "survive a restart" in mounted.storage_line() and str(tmp_path / "bucket") in mounted.storage_line()


@pytest.mark.app
@pytest.mark.slow
def test_a_clean_copy_of_the_repo_starts_as_a_space(tiny_store, tmp_path):
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    copy = tmp_path / "space"
    for name in filter(None, tracked.decode().split("\0")):
        source = REPO_ROOT / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    bucket = tmp_path / "bucket"
    app = RunningApp(
        tmp_path / "unused",
        repo=copy,
        extra_env={
            "SPACE_ID": "someone/mmr",
            "MMR_INDEX_STORE": str(tiny_store.index_store),
            "MMR_DATA_DIR": str(bucket),
        },
    )
    app.start()
    try:
        log = app.log_path.read_text()
        assert f"Ratings and uploads are kept in {bucket}" in log, log[-2000:]
        answer = Client(app.url, verbose=False).predict("a frog", "stamps", ["bm25"], 3, api_name="/search_json")
        assert answer["results"][0]["hits"], answer
        assert (bucket / "ratings.sqlite").exists(), "the ratings database is not in the data directory"
    finally:
        app.stop()
