"""Where things live. Plain values only: nothing here loads a model. The one file it reads is a trained
method's release pointer (``releases/<name>/CURRENT``), which is what "where its model lives" means.

Every path can be overridden by an environment variable so that tests, CI and Spaces
point the same code at their own folders.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


DATA_DIR_VARIABLE = "MMR_DATA_DIR"
CLIP_PATH_VARIABLE = "MMR_CLIP_PATH"
BLIP_PATH_VARIABLE = "MMR_BLIP_PATH"
# Where a trained method's releases live: releases/<name>/<stamp>/{model,indexes/<collection>}, and
# releases/<name>/CURRENT names the one served. Switching a release is one atomic rename of CURRENT.
CURRENT_RELEASE = "CURRENT"


# Where scripts/setup.sh unpacks the Debian data packages when it cannot install them (no root).
LOCAL_DEBIAN_ROOT = REPO_ROOT / ".debian-root"


def _folder_from(variable: str) -> Path | None:
    """The folder an environment variable names (``~`` expanded), or None when it is unset or empty."""
    value = os.environ.get(variable)
    return Path(value).expanduser() if value else None


def _debian_path(path: str) -> Path:
    """The system path when the package is installed, else its copy unpacked without root."""
    system = Path(path)
    local = LOCAL_DEBIAN_ROOT / path.lstrip("/")
    return system if system.exists() or not local.exists() else local


@dataclass(frozen=True)
class SourcePaths:
    """Where the Debian packages put the raw data the default corpora are built from."""

    tuxpaint_stamps: Path = field(default_factory=lambda: _debian_path("/usr/share/tuxpaint/stamps"))
    openclipart_svg: Path = field(default_factory=lambda: _debian_path("/usr/share/openclipart/svg"))
    wordnet_dict: Path = field(default_factory=lambda: _debian_path("/usr/share/wordnet"))


@dataclass(frozen=True)
class Settings:
    index_store: Path = field(
        default_factory=lambda: Path(os.environ.get("MMR_INDEX_STORE", REPO_ROOT / "index_store"))
    )
    # Ratings and uploads. Never a hard-wired /data (Spaces' persistent disk is gone): on a Space, mount a
    # storage bucket and name its path here, or the ratings live only as long as the container.
    data_dir: Path = field(default_factory=lambda: Path(os.environ.get(DATA_DIR_VARIABLE, REPO_ROOT / "data")))
    db_path_override: str | None = field(default_factory=lambda: os.environ.get("MMR_DB"))
    sources: SourcePaths = field(default_factory=SourcePaths)
    device: str | None = field(default_factory=lambda: os.environ.get("MMR_DEVICE") or None)
    # Torch threads a trainer uses: the budget machine's two cores. Set MMR_TRAIN_THREADS=1 when other jobs keep
    # the cores busy, where a second thread waits on synchronisation more than it works (2.5-3.5x slower per
    # step at load 8-13 on 2 cores); not guessed from the load average, which reads busy right after a build.
    training_threads: int = field(default_factory=lambda: int(os.environ.get("MMR_TRAIN_THREADS", "2")))
    # Local checkpoint folders (save_pretrained layout) for the clip-* and blip-* encoders; none ships here.
    clip_path: Path | None = field(default_factory=lambda: _folder_from(CLIP_PATH_VARIABLE))
    blip_path: Path | None = field(default_factory=lambda: _folder_from(BLIP_PATH_VARIABLE))
    # The app trains what has no model in a background process (MMR_TRAIN_IN_BACKGROUND=0: it serves what is
    # built and trains nothing), and looks for new releases every reload_seconds.
    train_in_background: bool = field(
        default_factory=lambda: os.environ.get("MMR_TRAIN_IN_BACKGROUND", "1").strip().lower() not in ("0", "false")
    )
    reload_seconds: float = field(default_factory=lambda: float(os.environ.get("MMR_RELOAD_SECONDS", "3")))
    # Who a grade belongs to. "huggingface": raters sign in with their Hugging Face account (a Space with
    # `hf_oauth: true` sets OAUTH_CLIENT_ID); visitors who are not signed in search but do not grade.
    # "local": a rater name is claimed once and bound to a token the browser keeps.
    sign_in: str = field(
        default_factory=lambda: (
            os.environ.get("MMR_SIGN_IN") or ("huggingface" if os.environ.get("OAUTH_CLIENT_ID") else "local")
        )
    )
    # name -> release folder that a training run writes into (and reads its own model back from) before
    # the release is published; every other method still resolves to its published release.
    staging: dict[str, Path] = field(default_factory=dict, compare=False)

    @property
    def db_path(self) -> Path:
        return Path(self.db_path_override) if self.db_path_override else self.data_dir / "ratings.sqlite"

    def storage_line(self) -> str:
        """One line for the log at start: where ratings are kept and whether they outlive this machine."""
        where = f"Ratings and uploads are kept in {self.data_dir} (database {self.db_path})"
        if os.environ.get("SPACE_ID") and DATA_DIR_VARIABLE not in os.environ and not self.db_path_override:
            return (
                f"{where}, inside this Space's container: they are LOST when the Space restarts. Mount a storage "
                f"bucket and set {DATA_DIR_VARIABLE} to its path to keep them (README, Deploying)."
            )
        return f"{where}; they survive a restart as long as that folder does."

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def corpora_dir(self) -> Path:
        return self.index_store / "corpora"

    @property
    def media_dir(self) -> Path:
        return self.index_store / "media"

    @property
    def benchmark_dir(self) -> Path:
        return self.index_store / "benchmark"

    @property
    def features_dir(self) -> Path:
        return self.index_store / "features"

    @property
    def indexes_dir(self) -> Path:
        return self.index_store / "indexes"

    @property
    def models_dir(self) -> Path:
        """Models trained before releases existed (``models/<name>``), still loaded where no release is."""
        return self.index_store / "models"

    @property
    def releases_dir(self) -> Path:
        return self.index_store / "releases"

    @property
    def training_dir(self) -> Path:
        """The background trainer's status file, locks and per-method logs."""
        return self.index_store / "training"

    def release_folder(self, name: str) -> Path | None:
        """The folder of ``name``'s release in use: the staged one while it trains, else the published one."""
        if name in self.staging:
            return self.staging[name]
        try:
            stamp = (self.releases_dir / name / CURRENT_RELEASE).read_text().strip()
        except FileNotFoundError:
            return None
        return self.releases_dir / name / stamp

    def model_dir(self, name: str) -> Path:
        release = self.release_folder(name)
        return release / "model" if release is not None else self.models_dir / name

    def index_dir(self, retriever: str, collection: str) -> Path:
        release = self.release_folder(retriever)
        return (release / "indexes" if release is not None else self.indexes_dir / retriever) / collection


BUILD_COMMAND = "python -m mmr build"


def offline_hub_unless_told() -> None:
    """Entry points (the CLI, the app) call this before anything imports transformers: this project loads
    every model from a local folder, and on a machine without the hub a lookup there would only wait and
    fail. ``HF_HUB_OFFLINE=0`` in the environment lets a machine that has the hub use it."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
