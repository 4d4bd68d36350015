"""The loading code for a published CLIP checkpoint (the papers' backbone), on a tiny CLIP the test creates."""

import numpy as np
import pytest
import torch
from PIL import Image

from mmr.encoders import l2_normalise, load_encoder
from mmr.encoders.clip import CLIP_PATH_VARIABLE, CLIPImageEncoder, CLIPTextEncoder
from tests.tiny_clip import save_tiny_clip

WORDS = ["a", "red", "flower", "cat", "dog"]


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("tiny-clip"), WORDS)


def images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8))
    return [Image.new("RGB", (50, 40), "red"), noise, Image.new("RGBA", (32, 64), (0, 0, 255, 128))]


def test_both_towers_give_clips_own_projected_embeddings_normalised(tiny_clip):
    from transformers import CLIPModel, CLIPTokenizerFast

    text = CLIPTextEncoder("clip-text", tiny_clip, batch_size=2, device="cpu")
    image = CLIPImageEncoder("clip-image", tiny_clip, batch_size=2, device="cpu")
    texts = ["a red flower", "cat", "a dog a cat a red flower"]
    t, v = text.encode(texts), image.encode(images())
    assert t.shape == (3, 8) and v.shape == (3, 8) and t.dtype == v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(np.vstack([t, v]), axis=1), 1.0, rtol=1e-5)
    # the reference: transformers' CLIPModel features, computed here in one batch (the encoder's batches hold 2)
    model, tokenizer = (
        CLIPModel.from_pretrained(str(tiny_clip)).eval(),
        CLIPTokenizerFast.from_pretrained(str(tiny_clip)),
    )
    with torch.no_grad():
        reference = model.get_text_features(**tokenizer(texts, padding=True, return_tensors="pt"))
        reference = getattr(reference, "pooler_output", reference)  # transformers 5 wraps the features
    np.testing.assert_allclose(t, torch.nn.functional.normalize(reference, dim=-1).numpy(), atol=1e-5)
    # the text is pooled at its end token: padding in a batch changes nothing
    np.testing.assert_allclose(text.encode(["cat"])[0], t[1], atol=1e-5)
    assert not np.allclose(t[0], t[1]) and not np.allclose(v[0], v[1])
    assert text.encode([]).shape == (0, 8)


def test_patch_states_are_the_grid_without_the_class_token(tiny_clip):
    encoder = CLIPImageEncoder("clip-image", tiny_clip, device="cpu")
    states = encoder.patch_states(images()[:2])
    assert states.shape == (2, 16, 16)  # 32 / 8 = a 4x4 grid of 16-wide states
    assert not np.allclose(states[0, 0], states[0, 5])


def test_as_a_vision_backbone_it_states_its_sizes_and_has_no_classifier(tiny_clip):
    encoder = CLIPImageEncoder("clip-image", tiny_clip, device="cpu")
    assert (encoder.dim, encoder.grid_dim, encoder.grid_tokens) == (8, 16, 16)
    features = encoder.features(images()[:3], keep_grid=True, batch_size=2)  # two batches joined
    assert features.pooled.shape == (3, 8) and features.grid.shape == (3, 16, 16) and features.logits is None
    np.testing.assert_allclose(l2_normalise(features.pooled), encoder.encode(images()[:3]), atol=1e-5)
    np.testing.assert_allclose(features.grid[:2], encoder.patch_states(images()[:2]), atol=1e-5)
    assert encoder.features(images()[:2]).grid is None and encoder.class_head() is None
    empty = encoder.features([], keep_grid=True)
    assert empty.pooled.shape == (0, 8) and empty.grid.shape == (0, 16, 16)


def test_registry_loads_from_the_folder_the_variable_names_and_says_what_to_do_without_it(tiny_clip, monkeypatch):
    monkeypatch.delenv(CLIP_PATH_VARIABLE, raising=False)
    with pytest.raises(FileNotFoundError, match=CLIP_PATH_VARIABLE):
        load_encoder("clip-text", device="cpu")
    monkeypatch.setenv(CLIP_PATH_VARIABLE, str(tiny_clip.parent))  # a folder without a checkpoint
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_encoder("clip-image", device="cpu")
    monkeypatch.setenv(CLIP_PATH_VARIABLE, str(tiny_clip))
    assert load_encoder("clip-image", device="cpu").encode(images()[:1]).shape == (1, 8)
    # an explicit path needs no variable
    monkeypatch.delenv(CLIP_PATH_VARIABLE)
    assert load_encoder("clip-text", device="cpu", path=tiny_clip).encode(["a cat"]).shape == (1, 8)
