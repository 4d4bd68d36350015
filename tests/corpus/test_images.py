import io

import pytest
from PIL import Image

from mmr.corpus.images import (
    ImageInputError,
    SvgRenderError,
    composite_on_white,
    load_image,
    open_uploaded_image,
    pad_to_square,
    render_svg_bytes,
    render_to_png,
)

RED = (255, 0, 0)
WHITE = (255, 255, 255)
MB = 1_000_000

SVG_HALF_RED = b"""<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20">
<rect x="0" y="0" width="20" height="20" fill="red"/></svg>"""
SVG_WITH_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE svg [<!ENTITY colour "red">]>
<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">
<rect x="0" y="0" width="10" height="10" fill="&colour;"/></svg>"""


def png_bytes(img: Image.Image, **save_args) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", **save_args)
    return buffer.getvalue()


def half_transparent(size=(8, 4)) -> Image.Image:
    """Left half opaque red, right half fully transparent *black* (what RGB conversion exposes)."""
    img = Image.new("RGBA", size, (0, 0, 0, 0))
    img.paste((*RED, 255), (0, 0, size[0] // 2, size[1]))
    return img


def test_composite_turns_transparent_pixels_white():
    out = composite_on_white(half_transparent())
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == RED
    assert out.getpixel((7, 3)) == WHITE


@pytest.mark.parametrize("mode", ["LA", "P"])
def test_other_transparent_modes_become_white(mode):
    if mode == "LA":
        img = Image.new("LA", (4, 4), (0, 0))
        data = png_bytes(img)
    else:
        img = Image.new("P", (4, 4), 0)
        img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
        data = png_bytes(img, transparency=0)
    out = open_uploaded_image(data, max_bytes=MB, max_pixels=MB)
    assert out.mode == "RGB" and out.getpixel((1, 1)) == WHITE


def test_pad_to_square_pads_on_white_without_cropping():
    img = Image.new("RGB", (20, 10), RED)
    out = pad_to_square(img)
    assert out.size == (20, 20)
    assert out.getpixel((10, 10)) == RED  # content kept, centred
    assert out.getpixel((10, 1)) == WHITE and out.getpixel((10, 18)) == WHITE
    assert sum(1 for px in out.getdata() if px == RED) == 200  # nothing cut


def test_load_png_composites_and_shrinks(tmp_path):
    path = tmp_path / "wide.png"
    half_transparent((800, 200)).save(path)
    out = load_image(path, max_side=400)
    assert out.mode == "RGB" and out.size == (400, 100)
    assert out.getpixel((10, 50)) == RED and out.getpixel((390, 50)) == WHITE


def test_load_svg_renders_at_max_side_on_white(tmp_path):
    path = tmp_path / "shape.svg"
    path.write_bytes(SVG_HALF_RED)
    out = load_image(path, max_side=200)
    assert out.size == (200, 100)
    assert out.getpixel((50, 50)) == RED
    assert out.getpixel((150, 50)) == WHITE  # transparent in the SVG


def test_svg_with_entities_falls_back_to_unsafe_mode(tmp_path):
    path = tmp_path / "entity.svg"
    path.write_bytes(SVG_WITH_ENTITY)
    assert load_image(path, max_side=20).getpixel((10, 10)) == RED


def test_svg_render_past_time_limit_is_killed():
    with pytest.raises(SvgRenderError, match="longer than"):
        render_svg_bytes(SVG_HALF_RED, max_side=100, timeout_s=0.0001)


def test_broken_svg_raises_render_error():
    with pytest.raises(SvgRenderError):
        render_svg_bytes(b"<svg this is not xml", timeout_s=10)


def test_render_to_png_writes_normalised_png(tmp_path):
    src, dst = tmp_path / "in.svg", tmp_path / "out" / "in.png"
    src.write_bytes(SVG_HALF_RED)
    assert render_to_png(src, dst, max_side=64)
    out = Image.open(dst)
    assert out.format == "PNG" and out.mode == "RGB" and max(out.size) == 64
    assert not list(dst.parent.glob("*.tmp"))


@pytest.mark.parametrize(
    "name,content",
    [
        ("garbage.png", b"certainly not a png"),
        ("blank.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="5" height="5"/>'),
        ("timeout.svg", SVG_HALF_RED),
    ],
)
def test_render_to_png_reports_failure_without_raising(tmp_path, name, content):
    src, dst = tmp_path / name, tmp_path / "out.png"
    src.write_bytes(content)
    timeout = 0.0001 if name == "timeout.svg" else 10
    assert render_to_png(src, dst, timeout_s=timeout) is False
    assert not dst.exists()


def test_render_to_png_missing_file_returns_false(tmp_path):
    assert render_to_png(tmp_path / "nope.png", tmp_path / "out.png") is False


# --------------------------------------------------------------------------- uploads


def noise_png(size=(64, 64)) -> bytes:
    return png_bytes(Image.effect_noise(size, 50).convert("RGB"))


def test_valid_upload_is_decoded_to_rgb():
    out = open_uploaded_image(png_bytes(half_transparent()), max_bytes=MB, max_pixels=MB)
    assert out.mode == "RGB" and out.size == (8, 4) and out.getpixel((7, 0)) == WHITE


def test_jpeg_upload_is_accepted():
    buffer = io.BytesIO()
    Image.new("RGB", (30, 20), RED).save(buffer, format="JPEG")
    assert open_uploaded_image(buffer.getvalue(), MB, MB).size == (30, 20)


@pytest.mark.parametrize(
    "data,limit,message",
    [
        (b"", MB, "empty"),
        (b"x" * 2000, 1000, "upload limit"),
        (b"%PDF-1.4 this is a pdf, not an image", MB, "not an image"),
    ],
)
def test_upload_rejections_before_decoding(data, limit, message):
    with pytest.raises(ImageInputError, match=message):
        open_uploaded_image(data, max_bytes=limit, max_pixels=MB)


def test_truncated_image_is_reported_as_damaged():
    data = noise_png()
    with pytest.raises(ImageInputError, match="damaged or incomplete"):
        open_uploaded_image(data[: len(data) // 2], MB, MB)


def test_corrupt_pixel_data_is_reported_as_damaged():
    data = bytearray(noise_png())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)  # breaks the zlib stream / CRC
    with pytest.raises(ImageInputError, match="damaged"):
        open_uploaded_image(bytes(data), MB, MB)


def test_decompression_bomb_is_refused_from_the_header():
    # 4000x4000 one-bit image: a few kB on disk, 16M pixels once decoded.
    data = png_bytes(Image.new("1", (4000, 4000)))
    assert len(data) < 100_000
    with pytest.raises(ImageInputError, match="4000x4000 pixels.*limit"):
        open_uploaded_image(data, max_bytes=MB, max_pixels=1_000_000)


@pytest.mark.parametrize("pillow_limit", [100, 300])  # error (>2x) and warning (>1x) paths
def test_pillow_bomb_error_and_warning_become_input_errors(monkeypatch, pillow_limit):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pillow_limit)
    data = png_bytes(Image.new("RGB", (20, 20), RED))  # 400 pixels
    with pytest.raises(ImageInputError, match="limit"):
        open_uploaded_image(data, max_bytes=MB, max_pixels=MB)


def test_upload_error_is_a_value_error():
    assert issubclass(ImageInputError, ValueError)
