import io

import pytest
from PIL import Image

from mmr.queries import MAX_QUERY_CHARS, QueryInputError, prepare_query


def _png(tmp_path, size=(20, 10), mode="RGBA"):
    path = tmp_path / "q.png"
    Image.new(mode, size, (255, 0, 0, 0) if mode == "RGBA" else (255, 0, 0)).save(path)
    return path


def test_empty_query_is_refused(tmp_path):
    with pytest.raises(QueryInputError, match="Type a query"):
        prepare_query("   ", None, tmp_path)


def test_huge_query_is_shortened_with_a_notice(tmp_path):
    prepared = prepare_query("c" * 100_000, None, tmp_path)
    assert len(prepared.query.text) == MAX_QUERY_CHARS
    assert "100,000" in prepared.notice


def test_image_query_is_kept_on_disk(tmp_path):
    prepared = prepare_query("", _png(tmp_path), tmp_path / "uploads")
    assert prepared.query.modality == "image"
    assert prepared.query.image.getpixel((0, 0)) == (255, 255, 255)  # transparent -> white
    kept = Image.open(prepared.image_path)
    assert kept.size == (20, 10)
    assert prepared.query.key == f"image:{prepared.query.image_sha}"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "empty"),
        (b"this is not an image at all", "not an image"),
        ("truncated", "damaged"),
    ],
)
def test_bad_images_give_a_message(tmp_path, payload, message):
    if payload == "truncated":
        buffer = io.BytesIO()
        Image.new("RGB", (200, 200), (1, 2, 3)).save(buffer, format="PNG")
        payload = buffer.getvalue()[:200]
    path = tmp_path / "bad.png"
    path.write_bytes(payload)
    with pytest.raises(QueryInputError, match=message):
        prepare_query("", path, tmp_path)


def test_decompression_bomb_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("1", (20_000, 20_000)).save(path)  # 50 MB of pixels in a small file
    assert path.stat().st_size < 1_000_000
    with pytest.raises(QueryInputError, match="pixel limit|too many pixels"):
        prepare_query("", path, tmp_path)


def test_oversized_upload_refused(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(b"\0" * (11 * 1024 * 1024))
    with pytest.raises(QueryInputError, match="limit is 10 MB"):
        prepare_query("", path, tmp_path)
