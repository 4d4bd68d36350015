"""Image loading that a bad file cannot break: corpus renders, encoder inputs and user uploads.

Every image leaves this module as RGB with transparency composited on white: clip art and stamps are
drawn on transparent canvases, and a black background (what a plain ``convert("RGB")`` gives) changes
what an ImageNet CNN sees. SVGs are rendered by cairosvg in a separate process that is killed after a
time limit, because a few openclipart files take seconds and a hanging render must not stall a build.
"""

from __future__ import annotations

import io
import logging
import multiprocessing
import re
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from mmr.limits import MAX_IMAGE_TEXT_CHUNK, MAX_IMAGE_TEXT_TOTAL
from mmr.progress import ProgressBar

# PIL inflates a PNG's compressed text chunks (zTXt, iTXt) while it opens the file, up to 1 MB each and 64 MB
# in all by default: a few kilobytes on the wire can cost that much memory per upload. No image this app
# reads needs more than a little text, and the limits are PIL's own process-wide settings.
PngImagePlugin.MAX_TEXT_CHUNK = MAX_IMAGE_TEXT_CHUNK
PngImagePlugin.MAX_TEXT_MEMORY = MAX_IMAGE_TEXT_TOTAL

logger = logging.getLogger(__name__)

WHITE = (255, 255, 255)
# An SVG has no pixel size of its own; this bounds the raster a declared 20000px canvas turns into.
DEFAULT_SVG_SIDE = 1024
# 12pt at 96 dpi: cairosvg's default font size, needed to resolve em/ex units in width/height.
_DEFAULT_FONT_PX = 16.0


class ImageInputError(ValueError):
    """An uploaded file that cannot be used as an image query; the message is meant for the user."""


class SvgRenderError(RuntimeError):
    pass


def composite_on_white(img: Image.Image, fill: tuple[int, int, int] = WHITE) -> Image.Image:
    """Return an RGB image; transparent pixels become ``fill`` instead of whatever RGB they hid."""
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    if not has_alpha:
        return img if img.mode == "RGB" else img.convert("RGB")
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (*fill, 255))
    background.alpha_composite(rgba)
    return background.convert("RGB")


def pad_to_square(img: Image.Image, fill: tuple[int, int, int] = WHITE) -> Image.Image:
    """Centre the image on a square canvas. Encoders resize this instead of centre-cropping, which
    cuts off the parts of a tall or wide stamp that identify it."""
    img = composite_on_white(img, fill)
    width, height = img.size
    if width == height:
        return img
    side = max(width, height)
    canvas = Image.new("RGB", (side, side), fill)
    canvas.paste(img, ((side - width) // 2, (side - height) // 2))
    return canvas


# --------------------------------------------------------------------------------------- SVG


def _svg_pixel_size(tree) -> tuple[float, float]:
    from cairosvg.helpers import node_format

    # node_format only reads these attributes of a surface; building a real one would render.
    probe = SimpleNamespace(dpi=96, font_size=_DEFAULT_FONT_PX, context_width=None, context_height=None)
    width, height, _ = node_format(probe, tree)
    return float(width or 0), float(height or 0)


def _render_svg(data: bytes, max_side: int | None, unsafe: bool) -> bytes:
    from cairosvg.parser import Tree
    from cairosvg.surface import PNGSurface

    tree = Tree(bytestring=data, unsafe=unsafe)
    width, height = _svg_pixel_size(tree)
    if width <= 0 or height <= 0:
        raise SvgRenderError("the SVG has no usable width/height or viewBox")
    scale = 1.0
    if max_side:
        scale = max_side / max(width, height)  # vector art: scaling up costs no quality
    out_w, out_h = max(1, round(width * scale)), max(1, round(height * scale))
    output = io.BytesIO()
    surface = PNGSurface(tree, output, 96, output_width=out_w, output_height=out_h)
    surface.finish()
    return output.getvalue()


def _svg_child(data: bytes, max_side: int | None, conn) -> None:
    """Runs in the child process; reports ``(ok, png bytes or error text)``."""
    try:
        try:
            png = _render_svg(data, max_side, unsafe=False)
        except Exception as first:  # noqa: BLE001 - retry any parse failure with entities on
            # Some files declare XML entities, which cairosvg only expands in unsafe mode.
            # Unsafe is acceptable here: the corpus files are local packages, not user uploads.
            try:
                png = _render_svg(data, max_side, unsafe=True)
            except Exception as second:  # noqa: BLE001
                raise second from first
        conn.send((True, png))
    except Exception as err:  # noqa: BLE001 - every failure goes back to the parent as text
        conn.send((False, f"{type(err).__name__}: {err}"))
    finally:
        conn.close()


def _process_context() -> multiprocessing.context.BaseContext:
    # forkserver forks from a clean single-threaded server, so it is safe to call from a threaded
    # app (plain fork is not) and much cheaper per file than spawn once cairosvg is preloaded.
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["cairosvg", __name__])
        return ctx
    return multiprocessing.get_context("spawn")


def render_svg_bytes(data: bytes, max_side: int | None = DEFAULT_SVG_SIDE, timeout_s: float = 10.0) -> bytes:
    """Render SVG source to PNG bytes in a child process killed after ``timeout_s``."""
    ctx = _process_context()
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_svg_child, args=(data, max_side, sender))
    proc.start()
    sender.close()
    try:
        if not receiver.poll(timeout_s):
            raise SvgRenderError(f"render took longer than {timeout_s:g}s")
        ok, payload = receiver.recv()
    except EOFError as err:
        raise SvgRenderError(f"renderer died (exit code {proc.exitcode})") from err
    finally:
        receiver.close()
        if proc.is_alive():
            proc.kill()
        proc.join()
    if not ok:
        raise SvgRenderError(payload)
    return payload


# ------------------------------------------------------------------------------------ loading


def load_image(path: str | Path, timeout_s: float = 10.0, max_side: int | None = DEFAULT_SVG_SIDE) -> Image.Image:
    """Load PNG/JPEG/... or render an SVG; RGB on white. Raster images larger than ``max_side``
    are shrunk, never enlarged; SVGs are rendered with their longest side at ``max_side``."""
    path = Path(path)
    if path.suffix.lower() in (".svg", ".svgz"):
        data = path.read_bytes()
        if path.suffix.lower() == ".svgz":
            import gzip

            data = gzip.decompress(data)
        img = Image.open(io.BytesIO(render_svg_bytes(data, max_side, timeout_s)))
    else:
        img = Image.open(path)
    img.load()
    img = composite_on_white(ImageOps.exif_transpose(img))
    if max_side and max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return img


def render_to_png(src: str | Path, dst: str | Path, max_side: int = 512, timeout_s: float = 10.0) -> bool:
    """Write ``src`` as an RGB PNG on white, longest side at most ``max_side``.

    Returns False (and logs why) for a file that cannot be used; never raises for a bad file,
    so one broken image cannot stop a corpus build.
    """
    src, dst = Path(src), Path(dst)
    try:
        img = load_image(src, timeout_s=timeout_s, max_side=max_side)
    except Exception as err:  # noqa: BLE001 - any decoder/renderer error means "skip this file"
        logger.warning("cannot render %s: %s", src, err)
        return False
    if img.convert("L").getextrema() == (255, 255):
        # A render with nothing on it (unsupported SVG features) would be a misleading document.
        logger.warning("cannot render %s: the result is blank", src)
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    # Write then rename, so an interrupted build never leaves a half-written PNG that a resumed
    # build would take as done.
    img.save(tmp, format="PNG", optimize=False)
    tmp.replace(dst)
    return True


@dataclass
class BuildReport:
    """What a corpus build did with its source files. ``rendered`` counts every document whose PNG
    exists afterwards, ``reused`` those of them a previous (interrupted) build had already written."""

    total: int = 0
    rendered: int = 0
    failed: int = 0
    failed_paths: list[str] = field(default_factory=list)
    reused: int = 0
    filtered: dict[str, int] = field(default_factory=dict)


_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def media_png_path(media_dir: Path, subdir: str, rel_stem: str) -> Path:
    """Where the normalised PNG of a source file goes: its tree mirrored, names made shell-safe."""
    parts = [_UNSAFE_NAME_CHARS.sub("_", part).strip(".") or "_" for part in rel_stem.split("/")]
    return Path(media_dir, subdir, *parts).with_suffix(".png")


def _render_job(job: tuple[str, str, int, float]) -> bool:
    src, dst, max_side, timeout_s = job
    return render_to_png(src, dst, max_side=max_side, timeout_s=timeout_s)


def render_many(
    jobs: Sequence[tuple[Path, Path]],
    workers: int = 2,
    max_side: int = 512,
    timeout_s: float = 10.0,
    desc: str = "rendering",
) -> list[bool]:
    """Render ``(src, dst)`` pairs in a process pool; returns success per job, in job order."""
    payload = [(str(src), str(dst), max_side, timeout_s) for src, dst in jobs]
    if workers <= 1 or len(payload) <= 1:
        return [_render_job(job) for job in ProgressBar(payload, desc=desc, unit="img")]
    results = [False] * len(payload)
    with ProcessPoolExecutor(max_workers=workers, mp_context=_process_context()) as pool:
        futures = {pool.submit(_render_job, job): i for i, job in enumerate(payload)}
        for future in ProgressBar(as_completed(futures), total=len(futures), desc=desc, unit="img"):
            try:
                results[futures[future]] = future.result()
            except Exception as err:  # noqa: BLE001 - a dead worker fails its job, not the build
                logger.warning("render job %s failed: %s", payload[futures[future]][0], err)
    return results


# ------------------------------------------------------------------------------------ uploads


def _megabytes(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB"


def _too_large_message(max_pixels: int, size: tuple[int, int] | None = None) -> str:
    what = f"is {size[0]}x{size[1]} pixels" if size else "has too many pixels"
    return (
        f"The image {what}, over the {max_pixels:,}-pixel limit "
        "(this protects the server from decompression bombs). Please upload a smaller image."
    )


def _decode_upload(data: bytes, max_pixels: int) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except UnidentifiedImageError as err:
            raise ImageInputError(
                "This file is not an image that can be read (use PNG, JPEG, GIF, WebP or BMP)."
            ) from err
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise ImageInputError(_too_large_message(max_pixels)) from err
        except ValueError as err:  # PIL's "Decompressed data too large" for text chunks over the limits above
            raise ImageInputError(f"The image carries more embedded text than allowed, or is damaged ({err}).") from err
        except Exception as err:  # noqa: BLE001 - a malformed header makes plugins raise OSError, SyntaxError...
            raise ImageInputError(f"The image file is damaged and cannot be read ({err}).") from err
        # The header alone gives the size: refuse before decoding allocates the pixels.
        if img.size[0] * img.size[1] > max_pixels:
            raise ImageInputError(_too_large_message(max_pixels, img.size))
        try:
            img.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise ImageInputError(_too_large_message(max_pixels)) from err
        except Exception as err:  # noqa: BLE001 - decoders raise OSError, SyntaxError, ValueError...
            raise ImageInputError(f"The image file is damaged or incomplete and cannot be decoded ({err}).") from err
    return img


def open_uploaded_image(data: bytes, max_bytes: int, max_pixels: int) -> Image.Image:
    """Decode an uploaded file, or raise ImageInputError with a message fit to show the user."""
    if not data:
        raise ImageInputError("The file is empty (0 bytes).")
    if len(data) > max_bytes:
        raise ImageInputError(f"The file is {_megabytes(len(data))}, over the {_megabytes(max_bytes)} upload limit.")
    img = _decode_upload(data, max_pixels)
    try:
        return composite_on_white(ImageOps.exif_transpose(img))
    except Exception as err:  # noqa: BLE001 - exotic modes (16-bit, CMYK with odd profiles)
        raise ImageInputError(f"The image uses a format that cannot be converted ({err}).") from err
