from pathlib import Path

import pytest
from PIL import Image

from mmr.corpus.tuxpaint import build_stamps_corpus, find_stamps, read_description

RED = (255, 0, 0)
WHITE = (255, 255, 255)
SVG_BLUE = b"""<svg xmlns="http://www.w3.org/2000/svg" width="30" height="60">
<rect x="0" y="0" width="30" height="30" fill="blue"/></svg>"""


def transparent_png(path: Path) -> None:
    img = Image.new("RGBA", (40, 20), (0, 0, 0, 0))
    img.paste((*RED, 255), (0, 0, 20, 20))
    img.save(path)


@pytest.fixture
def stamps_root(tmp_path: Path) -> Path:
    root = tmp_path / "stamps"
    (root / "animals" / "mammals").mkdir(parents=True)
    (root / "plants").mkdir()
    (root / "broken").mkdir()
    (root / "animals" / "cat.txt").write_text("A   big\tcat.\nfr.utf8=Un gros chat.\n", "utf-8")
    transparent_png(root / "animals" / "cat.png")
    (root / "animals" / "mammals" / "dog.txt").write_text("A dog.\n", "utf-8")
    (root / "animals" / "mammals" / "dog.svg").write_bytes(SVG_BLUE)
    # Both formats: the PNG is the one to use.
    (root / "plants" / "tree.txt").write_text("A tree.\n", "utf-8")
    transparent_png(root / "plants" / "tree.png")
    (root / "plants" / "tree.svg").write_bytes(SVG_BLUE)
    # Not UTF-8: must not stop the build.
    (root / "plants" / "rose.txt").write_bytes(b"A rose\xe9.\nxx.utf8=...\n")
    transparent_png(root / "plants" / "rose.png")
    (root / "plants" / "orphan.txt").write_text("No image here.\n", "utf-8")
    (root / "broken" / "bad.txt").write_text("A broken stamp.\n", "utf-8")
    (root / "broken" / "bad.png").write_bytes(b"not a png at all")
    return root


def test_find_stamps_pairs_text_with_image(stamps_root):
    found = {s.rel_stem: s.image_path.name for s in find_stamps(stamps_root)}
    assert found == {
        "animals/cat": "cat.png",
        "animals/mammals/dog": "dog.svg",
        "broken/bad": "bad.png",
        "plants/rose": "rose.png",
        "plants/tree": "tree.png",
    }


def test_read_description_first_line_normalised(stamps_root):
    assert read_description(stamps_root / "animals" / "cat.txt") == "A big cat."
    assert read_description(stamps_root / "plants" / "rose.txt") == "A rose\ufffd."


@pytest.mark.parametrize("workers", [1, 2])
def test_build_renders_every_stamp_and_skips_bad_ones(stamps_root, tmp_path, workers):
    media = tmp_path / "media"
    docs, report = build_stamps_corpus(stamps_root, media, workers=workers)

    assert report.total == 5 and report.rendered == 4 and report.failed == 1
    assert report.failed_paths == [str(stamps_root / "broken" / "bad.png")]
    by_id = {d.id: d for d in docs}
    assert sorted(by_id) == ["stamp/animals/cat", "stamp/animals/mammals/dog", "stamp/plants/rose", "stamp/plants/tree"]

    cat = by_id["stamp/animals/cat"]
    assert cat.modality == "image" and cat.text == "A big cat."
    assert cat.metadata == {"source": "tuxpaint", "category": "animals", "subcategory": "", "file": "animals/cat.png"}
    dog = by_id["stamp/animals/mammals/dog"]
    assert dog.metadata["subcategory"] == "mammals" and dog.metadata["file"].endswith(".svg")
    assert by_id["stamp/plants/tree"].metadata["file"] == "plants/tree.png"


def test_rendered_images_are_normalised_pngs_in_media_dir(stamps_root, tmp_path):
    media = tmp_path / "media"
    docs, _ = build_stamps_corpus(stamps_root, media, workers=1)
    for doc in docs:
        path = Path(doc.image_path)
        assert path.suffix == ".png" and media / "stamps" in path.parents
        with Image.open(path) as img:
            assert img.format == "PNG" and img.mode == "RGB" and max(img.size) <= 512
    cat = Image.open(next(d.image_path for d in docs if d.id == "stamp/animals/cat"))
    assert cat.getpixel((5, 5)) == RED and cat.getpixel((35, 5)) == WHITE
    dog = Image.open(next(d.image_path for d in docs if d.id.endswith("dog")))
    assert dog.size == (256, 512)  # the SVG is rendered at the full max side
    assert dog.getpixel((128, 400)) == WHITE


def test_stamp_with_empty_description_is_counted_not_built(stamps_root, tmp_path):
    (stamps_root / "plants" / "tree.txt").write_text("\n", "utf-8")
    docs, report = build_stamps_corpus(stamps_root, tmp_path / "media", workers=1)
    assert "stamp/plants/tree" not in {d.id for d in docs}
    assert report.failed == 2 and str(stamps_root / "plants" / "tree.txt") in report.failed_paths
