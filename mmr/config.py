"""Where things live. Plain values only: nothing here loads a model or opens a file.

Every path can be overridden by an environment variable so that tests, CI and Spaces
point the same code at their own folders.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _default_data_dir() -> Path:
    # Hugging Face Spaces mounts persistent storage at /data; elsewhere keep data beside the repo.
    return Path("/data") if Path("/data").is_dir() else REPO_ROOT / "data"


# Where scripts/setup.sh unpacks the Debian data packages when it cannot install them (no root).
LOCAL_DEBIAN_ROOT = REPO_ROOT / ".debian-root"


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
    data_dir: Path = field(default_factory=lambda: Path(os.environ.get("MMR_DATA_DIR", _default_data_dir())))
    db_path_override: str | None = field(default_factory=lambda: os.environ.get("MMR_DB"))
    sources: SourcePaths = field(default_factory=SourcePaths)
    device: str | None = field(default_factory=lambda: os.environ.get("MMR_DEVICE") or None)

    @property
    def db_path(self) -> Path:
        return Path(self.db_path_override) if self.db_path_override else self.data_dir / "ratings.sqlite"

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
        return self.index_store / "models"


BUILD_COMMAND = "python -m mmr build"
