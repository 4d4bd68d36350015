"""Uploaded query images are kept on disk, named by the hash of their pixels."""

from __future__ import annotations

import hashlib
from pathlib import Path

from PIL import Image


def image_sha(image: Image.Image) -> str:
    rgb = image.convert("RGB")
    digest = hashlib.sha256(f"{rgb.width}x{rgb.height}".encode())
    digest.update(rgb.tobytes())
    return digest.hexdigest()


def save_uploaded_image(image: Image.Image, uploads_dir: Path) -> tuple[str, Path]:
    sha = image_sha(image)
    path = Path(uploads_dir) / f"{sha[:2]}" / f"{sha}.png"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        image.convert("RGB").save(tmp, format="PNG")
        tmp.replace(path)
    return sha, path
