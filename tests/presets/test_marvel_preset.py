"""MARVEL and CIEA presets on tiny checkpoints in the published layout, against a forward pass written here:
MARVEL's arithmetic (ANCE/multi_model.py, CIEA's fork) with transformers' T5Model and CLIPVisionModel by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mmr.config import Settings
from mmr.presets.registry import PRESETS
from mmr.retrievers.base import Resources
from mmr.retrievers.preset import load_preset_model
from tests.presets.tiny_marvel import MARKERS, WORDS, TinyMarvel, save_state, save_tiny_marvel
from tests.tiny_t5 import t5_tokenizer

PATCHES = 16  # the tiny CLIP: 32-pixel images in 8-pixel patches
QUERIES = ["what is the red bird", "a green tree"]
CAPTIONS = ["a red stamp", "the blue bird is a flower"]


def images() -> list[Image.Image]:
    wide = Image.new("RGB", (48, 24), (200, 30, 30))
    wide.paste((20, 20, 220), (0, 0, 12, 24))
    tall = Image.new("RGB", (20, 40), (30, 160, 40))
    tall.paste((250, 250, 0), (5, 5, 15, 15))
    return [wide, tall]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, TinyMarvel]:
    root = tmp_path_factory.mktemp("marvel")
    return {"marvel": save_tiny_marvel(root / "marvel", seed=0), "ciea": save_tiny_marvel(root / "ciea", True, 1)}


def load(name: str, folder, monkeypatch, tmp_path):
    spec = PRESETS[name]
    monkeypatch.setenv(spec.variable, str(folder))
    return load_preset_model(spec, Resources(Settings(index_store=tmp_path / "s", data_dir=tmp_path / "d"), "cpu"))


# ------------------------------------------------------------------------------ the reference forward pass


def pixels(image: Image.Image, folder) -> torch.Tensor:
    from transformers import CLIPImageProcessorPil

    # as MARVEL's code does: the image as it is to CLIP's processor (shortest side resized, centre-cropped)
    return CLIPImageProcessorPil.from_pretrained(folder / "vision")(images=[image], return_tensors="pt")["pixel_values"]


def ciea_extract(patches: torch.Tensor, caption: torch.Tensor, state: dict) -> torch.Tensor:
    """CIEA's CustomTransformerLayer: keys weighted by 1 - the best caption match, squared, on the energies."""
    weights = 1 - ((F.cosine_similarity(caption[:, :, None], patches[:, None], dim=-1) + 1.00001) / 2).amax(1)

    def linear(x, name):
        return x @ state[f"information_extract.{name}.weight"].T + state[f"information_extract.{name}.bias"]

    def heads(x):
        return x.view(1, PATCHES, 8, 2).permute(0, 2, 1, 3)

    q, k, v = (heads(linear(patches, f"attention.{n}_linear")) for n in "qkv")
    energy = q @ k.permute(0, 1, 3, 2) / 2**0.5 * weights[:, None, None, :] ** 2
    energy = energy.masked_fill(weights[:, None, None, :] < 1e-5, float("-inf"))
    attended = (energy.softmax(-1) @ v).permute(0, 2, 1, 3).reshape(1, PATCHES, 16)
    x = patches + linear(attended, "attention.out_linear")
    ln = "information_extract.layer_norm"
    x = F.layer_norm(x, (16,), state[f"{ln}.weight"], state[f"{ln}.bias"], eps=1e-5)
    return x + linear(F.leaky_relu(linear(x, "feed_forward.0"), 0.01), "feed_forward.2")


@torch.no_grad()
def reference(tiny: TinyMarvel, text: str | None = None, image=None, caption: str = "", ciea: bool = False):
    """One input at a time, no padding: T5's decoder state at step one from token 0, L2-normalised."""
    tokenizer = t5_tokenizer(WORDS)
    tokenizer.add_special_tokens({"additional_special_tokens": MARKERS})
    if image is not None:
        patches = tiny.projector(tiny.clip(pixel_values=pixels(image, tiny.folder)).last_hidden_state[:, 1:])
        assert patches.shape[1] == PATCHES
    if image is not None and not caption:
        embeds, mask = patches, None
    else:
        if image is None:
            template = text
        else:  # CIEA drops the space after the start marker; both tokenize alike
            template = "<im_start>" + ("" if ciea else " ") + "<im_patch>" * PATCHES + "<im_end> caption: " + caption
        ids = tokenizer(template, return_tensors="pt")["input_ids"]
        mask = torch.ones_like(ids)
        embeds = tiny.t5.shared(ids)
        if image is not None:
            assert ids[0, 1 : PATCHES + 1].tolist() == [tokenizer.convert_tokens_to_ids("<im_patch>")] * PATCHES
            if ciea:
                patches = ciea_extract(patches, embeds[:, PATCHES + 1 :], tiny.state)
            embeds = torch.cat([embeds[:, :1], patches, embeds[:, PATCHES + 1 :]], dim=1)
    out = tiny.t5(inputs_embeds=embeds, attention_mask=mask, decoder_input_ids=torch.zeros((1, 1), dtype=torch.long))
    return F.normalize(out.last_hidden_state[:, 0], dim=-1)[0].numpy()


# ------------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("name", ["marvel-ance-webqa", "marvel-dpr-webqa", "ciea-webqa"])
def test_embeddings_match_the_published_forward_pass(name, tiny, monkeypatch, tmp_path):
    ciea = name.startswith("ciea")
    checkpoint = tiny["ciea" if ciea else "marvel"]
    model = load(name, checkpoint.folder, monkeypatch, tmp_path)
    assert model.dim == 16 and not model.sparse
    np.testing.assert_allclose(
        model.encode_queries(QUERIES), [reference(checkpoint, text=q) for q in QUERIES], atol=1e-5
    )
    np.testing.assert_allclose(
        model.encode_text_documents(WORDS[2:4]), [reference(checkpoint, w) for w in WORDS[2:4]], atol=1e-5
    )
    # a batch mixing captioned images (two lengths: padded) and one without: patches alone
    got = model.encode_image_documents(images() + images()[:1], CAPTIONS + [""])
    expected = [reference(checkpoint, image=i, caption=c, ciea=ciea) for i, c in zip(images(), CAPTIONS)]
    expected.append(reference(checkpoint, image=images()[0]))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(
        model.encode_image_queries(images()[1:]), [reference(checkpoint, image=images()[1])], atol=1e-5
    )
    assert np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-6)


def test_extractor_changes_captioned_images_only(tiny):
    """The reference itself: CIEA's extractor moves a captioned image and nothing else, so its checks bite."""
    marvel = reference(tiny["ciea"], image=images()[0], caption=CAPTIONS[0])
    ciea = reference(tiny["ciea"], image=images()[0], caption=CAPTIONS[0], ciea=True)
    assert np.abs(marvel - ciea).max() > 1e-3


def test_wrong_layouts_fail_clearly(tiny, monkeypatch, tmp_path):
    from mmr.presets.base import PresetFilesError
    from mmr.presets.marvel import PresetLayoutError

    with pytest.raises(PresetLayoutError, match=r"unexpected \['information_extract"):
        load("marvel-ance-webqa", tiny["ciea"].folder, monkeypatch, tmp_path)  # CIEA's keys in a MARVEL preset
    with pytest.raises(PresetLayoutError, match="information_extract.feed_forward.0.weight"):
        load("ciea-webqa", tiny["marvel"].folder, monkeypatch, tmp_path / "2")  # no extractor

    broken = tmp_path / "broken"
    save_tiny_marvel(broken)
    for i, (variant, match) in enumerate(
        [
            ({k: v for k, v in tiny["marvel"].state.items() if k != "projector.bias"}, "projector.bias"),
            (tiny["marvel"].state | {"projector.scale": torch.ones(1)}, "projector.scale"),
            ({k.removeprefix("t5_model."): v for k, v in tiny["marvel"].state.items()}, "t5_model"),  # prefix lost
            (tiny["marvel"].state | {"projector.weight": torch.ones(16, 8)}, "projector.weight"),  # another shape
        ]
    ):
        save_state(broken, variant)
        with pytest.raises(PresetLayoutError, match=match):
            load("marvel-dpr-webqa", broken, monkeypatch, tmp_path / f"variant{i}")

    torch.save(tiny["marvel"].state, broken / "model.best.pt")  # the bare state dict, not {"epoch", "model"}
    with pytest.raises(PresetLayoutError, match="'model'"):
        load("marvel-ance-webqa", broken, monkeypatch, tmp_path / "bare")
    # a file without T5's repeated embedding keys loads too: they are ``shared`` under other names
    aliases = ("t5_model.encoder.embed_tokens.weight", "t5_model.decoder.embed_tokens.weight")
    save_state(broken, {k: v for k, v in tiny["marvel"].state.items() if k not in aliases})
    model = load("marvel-ance-webqa", broken, monkeypatch, tmp_path / "ok")
    np.testing.assert_allclose(model.encode_queries(QUERIES[:1]), [reference(tiny["marvel"], QUERIES[0])], atol=1e-5)
    missing_markers = {
        k: v[:-1] if k.endswith(("shared.weight", "embed_tokens.weight")) else v
        for k, v in tiny["marvel"].state.items()
    }
    save_state(broken, missing_markers)  # embeddings not resized for the markers: another tokenizer
    with pytest.raises(PresetFilesError, match="tokens"):
        load("marvel-ance-webqa", broken, monkeypatch, tmp_path / "rows")


@pytest.mark.parametrize("name", ["marvel-ance-webqa", "ciea-webqa"])
def test_retriever_builds_loads_and_searches(name, tiny, monkeypatch, tmp_path):
    from mmr.corpus.format import Corpus
    from mmr.retrievers.preset import preset_retriever
    from mmr.types import Document, Query

    ciea = name.startswith("ciea")
    checkpoint = tiny["ciea" if ciea else "marvel"]
    paths = []
    for i, image in enumerate(images()):
        paths.append(str(tmp_path / f"image{i}.png"))
        image.save(paths[-1])
    documents = (
        Document("t1", "text", text="a red bird"),
        Document("i1", "image", text="ignored", image_path=paths[0], metadata={"caption": CAPTIONS[0]}),
        Document("t2", "text", text="the green tree is a flower"),
        Document("i2", "image", image_path=paths[1]),  # no caption: its patches alone
    )
    corpus = Corpus("tiny", documents)
    vectors = {
        "t1": reference(checkpoint, "a red bird"),
        "i1": reference(checkpoint, image=images()[0], caption=CAPTIONS[0], ciea=ciea),
        "t2": reference(checkpoint, "the green tree is a flower"),
        "i2": reference(checkpoint, image=images()[1]),
    }
    monkeypatch.setenv(PRESETS[name].variable, str(checkpoint.folder))
    resources = Resources(Settings(index_store=tmp_path / "store", data_dir=tmp_path / "data"), device="cpu")
    retriever_class = preset_retriever(name)
    retriever_class.build(corpus, resources, tmp_path / "index")
    retriever = retriever_class.load(corpus, resources, tmp_path / "index")

    for query, vector in [
        (Query(text="what is the red stamp"), reference(checkpoint, "what is the red stamp")),
        (Query(image=images()[0]), reference(checkpoint, image=images()[0])),
    ]:
        hits = retriever.search(query, k=4)
        scores = {doc: float(vector @ doc_vector) for doc, doc_vector in vectors.items()}
        assert [hit.doc_id for hit in hits] == sorted(scores, key=scores.get, reverse=True)
        np.testing.assert_allclose([hit.score for hit in hits], sorted(scores.values(), reverse=True), atol=1e-5)
