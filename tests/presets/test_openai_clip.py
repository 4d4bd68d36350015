"""UniVL-DR's and CLIP-DPR's presets on a tiny random checkpoint in their published layout, checked against
OpenAI CLIP's arithmetic written out in tests/presets/openai_clip_layout.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mmr.config import Settings
from mmr.corpus.format import Corpus
from mmr.corpus.images import load_image
from mmr.presets.openai_clip import CheckpointLayoutError
from mmr.presets.registry import PRESETS
from mmr.retrievers.base import Resources
from mmr.retrievers.preset import load_preset_model, preset_retriever
from mmr.types import Document, Query
from tests.presets.openai_clip_layout import encode_image, encode_text, random_openai_state, save_base_clip

LONG = " ".join(["a red flower with a blue car"] * 4)  # past the 16-token context: truncated
TEXTS = ["a red flower", "cat", "dog with a blue car", "", LONG]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return save_base_clip(tmp_path_factory.mktemp("base") / "clip")


@pytest.fixture(scope="module")
def tokenizer(base):
    from transformers import CLIPTokenizerFast

    return CLIPTokenizerFast.from_pretrained(base)


@pytest.fixture(scope="module")
def state(tokenizer):
    return random_openai_state(len(tokenizer))


@pytest.fixture
def folder(tmp_path, base, state):
    """The unzipped checkpoint folder: model.best.pt as train.py saves it, and the ``clip`` base role."""
    folder = tmp_path / "checkpoint_multi_hn"
    folder.mkdir()
    torch.save({"epoch": 3, "model": state}, folder / "model.best.pt")
    (folder / "clip").symlink_to(base, target_is_directory=True)
    return folder


def resources_for(tmp_path) -> Resources:
    return Resources(Settings(index_store=tmp_path / "store", data_dir=tmp_path / "data"), device="cpu")


def images(tmp_path, count: int = 3) -> list[Image.Image]:
    """Wide random images saved and read back as the corpus reads them: the centre crop matters."""
    rng = np.random.default_rng(1)
    paths = []
    for i in range(count):
        paths.append(tmp_path / f"image-{i}.png")
        Image.fromarray(rng.integers(0, 255, (40, 64, 3), dtype=np.uint8)).save(paths[-1])
    return [load_image(path) for path in paths]


def reference_images(state, base, pictures) -> torch.Tensor:
    """Raw image embeddings; the processor stands in for clip's resize-and-centre-crop transform."""
    from transformers import CLIPImageProcessorPil

    pixels = CLIPImageProcessorPil.from_pretrained(base)(images=pictures, return_tensors="pt")["pixel_values"]
    return encode_image(state, pixels)


def normalised(rows: torch.Tensor) -> np.ndarray:
    return F.normalize(rows, dim=-1).numpy()


@pytest.mark.parametrize("name", ["univl-dr-webqa", "clip-dpr-webqa"])
def test_embeddings_are_openai_clips_with_the_caption_added_to_an_image_document(
    name, folder, base, state, tokenizer, tmp_path, monkeypatch
):
    monkeypatch.setenv(PRESETS[name].variable, str(folder))
    model = load_preset_model(PRESETS[name], resources_for(tmp_path))
    assert model.dim == 8 and not model.sparse

    texts = encode_text(state, tokenizer, TEXTS)
    np.testing.assert_allclose(model.encode_queries(TEXTS), normalised(texts), atol=1e-5)
    np.testing.assert_allclose(model.encode_text_documents(TEXTS), normalised(texts), atol=1e-5)

    pictures = images(tmp_path)
    pixels_embedded = reference_images(state, base, pictures)
    captions = ["a red flower", "", "cat with a caption"]
    caption_rows = encode_text(state, tokenizer, [captions[0], captions[2]])
    expected = pixels_embedded.clone()
    expected[[0, 2]] += caption_rows  # gen_embeddings.py sums the raw embeddings, then normalises
    got = model.encode_image_documents(pictures, captions)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, normalised(expected), atol=1e-5)
    np.testing.assert_allclose(model.encode_image_queries(pictures), normalised(pixels_embedded), atol=1e-5)

    # the check can tell the published sum from a sum of normalised parts: their norms differ here
    parts_normalised = F.normalize(pixels_embedded[[0, 2]], dim=-1) + F.normalize(caption_rows, dim=-1)
    assert np.abs(normalised(parts_normalised) - got[[0, 2]]).max() > 1e-2


def _read(folder, tmp_path, monkeypatch):
    spec = PRESETS["univl-dr-webqa"]
    monkeypatch.setenv(spec.variable, str(folder))
    return load_preset_model(spec, resources_for(tmp_path))


@pytest.mark.parametrize(
    "change, named",
    [
        (lambda s: s.pop("visual.ln_post.bias"), "visual.ln_post.bias"),
        (lambda s: s.pop("transformer.resblocks.1.attn.in_proj_weight"), "transformer.resblocks.1.attn.in_proj_weight"),
        (lambda s: s.update({"module.token_embedding.weight": s["token_embedding.weight"]}), "module."),
        (lambda s: s.update({"transformer.resblocks.2.ln_1.bias": s["ln_final.bias"]}), "resblocks.2.ln_1.bias"),
        (lambda s: s.update({"text_projection": s["text_projection"].T.contiguous()}), "text_projection"),
    ],
    ids=["missing-visual", "missing-text-layer", "prefixed", "extra-layer", "wrong-shape"],
)
def test_a_state_dict_not_in_the_published_layout_is_refused_by_name(
    change, named, folder, state, tmp_path, monkeypatch
):
    wrong = dict(state)
    change(wrong)
    torch.save({"epoch": 3, "model": wrong}, folder / "model.best.pt")
    with pytest.raises(CheckpointLayoutError, match=named.replace(".", r"\.")):
        _read(folder, tmp_path, monkeypatch)


def test_a_bare_state_dict_without_the_epoch_and_model_container_is_refused(folder, state, tmp_path, monkeypatch):
    torch.save(state, folder / "model.best.pt")
    with pytest.raises(CheckpointLayoutError, match="'epoch', 'model'"):
        _read(folder, tmp_path, monkeypatch)


def test_the_preset_retriever_ranks_texts_and_captioned_images_by_the_published_scores(
    folder, base, state, tokenizer, tmp_path, monkeypatch
):
    name = "univl-dr-webqa"
    monkeypatch.setenv(PRESETS[name].variable, str(folder))
    resources = resources_for(tmp_path)
    pictures = images(tmp_path, 2)
    documents = (
        Document("txt/flower", "text", "a red flower"),
        Document("txt/car", "text", "dog with a blue car"),
        Document("img/0", "image", "", str(tmp_path / "image-0.png"), metadata={"caption": "a red flower"}),
        Document("img/1", "image", "", str(tmp_path / "image-1.png")),
    )
    corpus = Corpus("tiny", documents)
    retriever = preset_retriever(name).build(corpus, resources, tmp_path / "index")

    image_rows = reference_images(state, base, pictures)
    image_rows[0] += encode_text(state, tokenizer, ["a red flower"])[0]
    vectors = np.concatenate(
        [normalised(encode_text(state, tokenizer, ["a red flower", "dog with a blue car"])), normalised(image_rows)]
    )
    ids = [doc.id for doc in documents]
    queries = [
        (Query(text="a blue car"), normalised(encode_text(state, tokenizer, ["a blue car"]))[0]),
        (Query(image=pictures[1], image_sha="x"), normalised(reference_images(state, base, pictures[1:]))[0]),
    ]
    reloaded = preset_retriever(name).load(corpus, resources, tmp_path / "index")
    for query, vector in queries:
        scores = vectors @ vector
        expected = [ids[i] for i in np.argsort(-scores)]
        for searcher in (retriever, reloaded):
            hits = searcher.search(query, k=4)
            assert [hit.doc_id for hit in hits] == expected
            np.testing.assert_allclose([hit.score for hit in hits], np.sort(scores)[::-1], atol=1e-5)
    assert retriever.search(Query(image=pictures[1], image_sha="x"), k=1)[0].doc_id == "img/1"
