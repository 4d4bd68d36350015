"""BLIP's retrieval projections as a backbone (encoders/blip.py), on the tiny BLIP of tests/tiny_d2s.py, against
BLIP's submodules called by hand (tests/tiny_d2s.py's reference) and transformers' own retrieval forward."""

import numpy as np
import pytest
import torch
from PIL import Image

from mmr.config import BLIP_PATH_VARIABLE
from mmr.encoders import l2_normalise, load_encoder
from mmr.encoders.blip import BLIPImageEncoder, BLIPTextEncoder
from tests.tiny_d2s import DENSE_SIZE, IMAGE_SIZE, reference_blip_vectors, save_tiny_blip

WORDS = ["a", "red", "car", "cat", "dog", "on", "the", "road"]
TEXTS = ["a red car", "cat", " ".join(["the dog on the road"] * 12)]  # the last one longer than BLIP's 35 tokens
GRID_TOKENS, GRID_DIM = (IMAGE_SIZE // 8) ** 2, 16  # 8-pixel patches of the 16-wide tiny vision tower


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory):
    return save_tiny_blip(tmp_path_factory.mktemp("tiny-blip"), WORDS)


def images() -> list[Image.Image]:
    """A wide one (squashed by BLIP's resize unless padded), a square one and a tall one; RGB, as the reference
    takes them."""
    noise = np.random.default_rng(0).integers(0, 255, (24, 40, 3), dtype=np.uint8)
    square, tall = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), "red"), Image.new("RGB", (20, 50), "blue")
    return [Image.fromarray(noise), square, tall]


def test_both_towers_give_blips_retrieval_vectors_normalised_in_one_space(tiny_blip):
    text = BLIPTextEncoder("blip-text", tiny_blip, batch_size=2, device="cpu")
    image = BLIPImageEncoder("blip-image", tiny_blip, batch_size=2, device="cpu")
    t, v = text.encode(TEXTS), image.encode(images())
    assert text.dim == image.dim == DENSE_SIZE and t.shape == v.shape == (3, DENSE_SIZE)
    assert t.dtype == v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(np.vstack([t, v]), axis=1), 1.0, rtol=1e-5)
    # the reference in one batch each; the encoders' batches hold 2, so padding must change nothing
    text_reference, image_reference = reference_blip_vectors(tiny_blip, TEXTS, images())
    np.testing.assert_allclose(t, text_reference.numpy(), atol=1e-5)
    np.testing.assert_allclose(v, image_reference.numpy(), atol=1e-5)
    assert not np.allclose(t[0], t[1]) and not np.allclose(v[0], v[1])
    assert text.encode([]).shape == (0, DENSE_SIZE)


def test_their_products_are_transformers_own_retrieval_scores(tiny_blip):
    """use_itm_head=False is BLIP's image-text contrastive score: the cosine of the two towers' vectors."""
    text = BLIPTextEncoder("blip-text", tiny_blip, device="cpu")
    image = BLIPImageEncoder("blip-image", tiny_blip, device="cpu")
    batch = text.tokenizer(TEXTS, padding=True, truncation=True, max_length=35, return_tensors="pt")
    with torch.no_grad():
        scores = text.model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            pixel_values=image.pixels(images()),
            use_itm_head=False,
        ).itm_score  # (images, texts)
    np.testing.assert_allclose(image.encode(images()) @ text.encode(TEXTS).T, scores.numpy(), atol=1e-5)


def test_the_towers_of_one_folder_share_one_loaded_model(tiny_blip):
    text = BLIPTextEncoder("blip-text", tiny_blip, device="cpu")
    image = BLIPImageEncoder("blip-image", tiny_blip, device="cpu")
    assert text.model is image.model


def test_as_a_vision_backbone_it_states_its_sizes_and_has_no_classifier(tiny_blip):
    encoder = BLIPImageEncoder("blip-image", tiny_blip, device="cpu")
    assert (encoder.dim, encoder.grid_dim, encoder.grid_tokens) == (DENSE_SIZE, GRID_DIM, GRID_TOKENS)
    features = encoder.features(images(), keep_grid=True, batch_size=2)  # two batches joined
    assert features.pooled.shape == (3, DENSE_SIZE) and features.logits is None
    assert features.grid.shape == (3, GRID_TOKENS, GRID_DIM)
    np.testing.assert_allclose(l2_normalise(features.pooled), encoder.encode(images()), atol=1e-5)
    assert encoder.features(images()[:1]).grid is None and encoder.class_head() is None
    empty = encoder.features([], keep_grid=True)
    assert empty.pooled.shape == (0, DENSE_SIZE) and empty.grid.shape == (0, GRID_TOKENS, GRID_DIM)


def test_pad_images_centres_an_image_on_white_before_the_resize(tiny_blip):
    padded = BLIPImageEncoder("blip-image", tiny_blip, pad_images=True, device="cpu")
    squashed = BLIPImageEncoder("blip-image", tiny_blip, device="cpu")
    wide = images()[0]  # 40 x 24: 8 white rows above and below on a 40-pixel square
    by_hand = Image.new("RGB", (40, 40), "white")
    by_hand.paste(wide, (0, 8))
    np.testing.assert_allclose(padded.encode([wide]), squashed.encode([by_hand]), atol=1e-6)
    assert not np.allclose(padded.encode([wide]), squashed.encode([wide]), atol=1e-3)
    square = images()[1]
    np.testing.assert_allclose(padded.encode([square]), squashed.encode([square]), atol=1e-6)


def test_max_length_cuts_the_text(tiny_blip):
    short = BLIPTextEncoder("blip-text", tiny_blip, max_length=4, device="cpu")  # [CLS] + 2 words + [SEP]
    np.testing.assert_allclose(short.encode(["a red car"]), short.encode(["a red"]), atol=1e-6)


def test_registry_loads_from_the_folder_the_variable_names_and_says_what_to_do_without_it(tiny_blip, monkeypatch):
    monkeypatch.delenv(BLIP_PATH_VARIABLE, raising=False)
    with pytest.raises(FileNotFoundError, match=f"no BLIP checkpoint: set {BLIP_PATH_VARIABLE}"):
        load_encoder("blip-text", device="cpu")
    monkeypatch.setenv(BLIP_PATH_VARIABLE, str(tiny_blip.parent))  # a folder without a checkpoint
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_encoder("blip-image", device="cpu")
    monkeypatch.setenv(BLIP_PATH_VARIABLE, str(tiny_blip))
    image = load_encoder("blip-image", device="cpu")
    assert isinstance(image, BLIPImageEncoder) and image.encode(images()[:1]).shape == (1, DENSE_SIZE)
    # an explicit path needs no variable
    monkeypatch.delenv(BLIP_PATH_VARIABLE)
    text = load_encoder("blip-text", device="cpu", path=tiny_blip)
    assert isinstance(text, BLIPTextEncoder) and text.max_length == 35
    np.testing.assert_allclose(text.encode(["a cat"]), BLIPTextEncoder("t", tiny_blip, device="cpu").encode(["a cat"]))
