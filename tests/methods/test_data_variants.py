"""The training-data options (`mmr train dense-inbatch|marvel|ciea --set ...`) each do what they say, only that."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mmr.config import Settings
from mmr.encoders.base import ImageFeatures
from mmr.encoders.registry import STAND_INS
from mmr.retrievers.base import Resources
from mmr.training.data import Example, TrainingData
from mmr.training.overrides import OverrideError, apply_overrides
from mmr.training.variants import (
    AugmentedView,
    DataOptions,
    GridDataOptions,
    with_augmented_views,
    with_keyword_captions,
)
from mmr.types import Document


def _image(doc_id: str, source: str, keywords: str = "") -> Document:
    return Document(doc_id, "image", "", image_path=f"{doc_id}.png", metadata={"source": source, "keywords": keywords})


def _data() -> TrainingData:
    documents = {
        "clip/frog": _image("clip/frog", "openclipart", "frog,green,animal,pond,amphibian,cartoon,fenland,froggy"),
        "clip/star": _image("clip/star", "openclipart"),  # no keywords
        "stamp/cat": _image("stamp/cat", "tuxpaint"),
        "wn/1": Document("wn/1", "text", "a small furry animal"),
    }
    examples = [
        Example("AZ-frog", "clip/frog", "az-frog"),
        Example("gold star", "clip/star", "gold star"),
        Example("A cat.", "stamp/cat", "a cat"),
        Example("kitten", "wn/1", "wn:kitten"),
    ]
    return TrainingData(examples, documents)


class FakeResources:
    """Features whose first value tells which image and which view they came from."""

    def __init__(self):
        self.calls = []

    def image_features(self, documents, encoder_name, keep_grid=False, view=None):
        self.calls.append((encoder_name, view))
        offset = 0 if view is None else 100 * view.seed
        pooled = np.array([[offset + i, 0.0] for i in range(len(documents))], np.float32)
        return ImageFeatures(pooled, pooled[:, :1].repeat(3, axis=1), None)


def test_without_repeats_the_data_is_left_as_it_is():
    data = _data()
    assert DataOptions(stamp_repeats=1).apply(data, FakeResources()).examples == data.examples


def test_stamp_pairs_repeat_in_their_own_group_and_nothing_else_does():
    repeated = DataOptions(stamp_repeats=3).apply(_data(), FakeResources())
    queries = [e.query for e in repeated.examples]
    assert queries.count("A cat.") == 3 and queries.count("AZ-frog") == queries.count("kitten") == 1
    assert {e.group for e in repeated.examples if e.query == "A cat."} == {"a cat"}


def test_a_stamp_share_keeps_whole_descriptions_and_every_other_pair():
    documents = {f"stamp/{i}": _image(f"stamp/{i}", "tuxpaint") for i in range(8)}
    documents["clip/frog"] = _image("clip/frog", "openclipart")
    # descriptions d0-d3, each of two stamps
    examples = [Example(f"D{i // 2}", f"stamp/{i}", f"d{i // 2}") for i in range(8)]
    examples.append(Example("AZ-frog", "clip/frog", "az-frog"))
    data = TrainingData(examples, documents)
    half = DataOptions(stamp_repeats=1, stamp_fraction=0.5).apply(data, FakeResources())
    kept = [e.group for e in half.examples if e.group.startswith("d")]
    assert len(set(kept)) == 2 and len(kept) == 4  # two descriptions, both stamps of each
    assert "az-frog" in {e.group for e in half.examples}
    assert DataOptions(stamp_repeats=1, stamp_fraction=0.5).apply(data, FakeResources()).examples == half.examples
    # the share is taken before the repeats: the kept pairs repeat, the dropped ones stay dropped
    repeated = DataOptions(stamp_repeats=3, stamp_fraction=0.5).apply(data, FakeResources())
    assert sorted(e.group for e in repeated.examples if e.group.startswith("d")) == sorted(kept * 3)
    draws = {
        frozenset(e.group for e in DataOptions(1, stamp_fraction=0.5, stamp_share_seed=seed).apply(data, None).examples)
        for seed in range(6)
    }
    assert len(draws) > 1  # another seed, another share
    none = DataOptions(stamp_repeats=1, stamp_fraction=0.0).apply(data, FakeResources())
    assert [e.group for e in none.examples] == ["az-frog"]
    with pytest.raises(ValueError, match="stamp_fraction"):
        DataOptions(stamp_fraction=1.5)


def test_keyword_captions_add_the_first_keywords_of_clips_only():
    added = with_keyword_captions(_data()).examples[len(_data().examples) :]
    assert [(e.query, e.positive_id) for e in added] == [("frog, green, animal, pond, amphibian, cartoon", "clip/frog")]
    assert added[0].group != "az-frog"  # a separate query; its image is masked from it by row, not by group


def test_augmented_views_are_new_image_documents_with_the_views_features_in_row_order():
    resources = FakeResources()
    data = with_augmented_views(_data(), resources, views=2)
    assert data.image_ids == [
        "clip/frog",
        "clip/star",
        "stamp/cat",
        "clip/frog#view1",
        "clip/star#view1",
        "stamp/cat#view1",
        "clip/frog#view2",
        "clip/star#view2",
        "stamp/cat#view2",
    ]
    assert data.text_ids == ["wn/1"]
    assert [view.seed for _, view in resources.calls[1:]] == [1, 2] and resources.calls[0][1] is None
    pooled = data.image_features(resources).pooled
    assert pooled[:, 0].tolist() == [0, 1, 2, 100, 101, 102, 200, 201, 202]
    cat_copies = [e for e in data.examples if e.query == "A cat."]
    assert [e.positive_id for e in cat_copies] == ["stamp/cat", "stamp/cat#view1", "stamp/cat#view2"]
    assert {e.group for e in cat_copies} == {"a cat"}
    assert [e.query for e in data.examples].count("kitten") == 1  # text pairs are not copied
    with pytest.raises(ValueError, match="augmented views"):
        data.image_features(resources, keep_grid=True)


def test_an_augmented_view_is_reproducible_per_seed_and_image():
    image = Image.new("RGB", (60, 40), (255, 255, 255))
    image.paste((200, 0, 0), (5, 5, 30, 35))
    first, again = AugmentedView(1)(image, "a.png"), AugmentedView(1)(image, "a.png")
    assert first.width == first.height and np.array_equal(np.asarray(first), np.asarray(again))
    others = [np.asarray(AugmentedView(seed)(image, "a.png")) for seed in range(2, 6)]
    assert any(o.shape != np.asarray(first).shape or not np.array_equal(o, np.asarray(first)) for o in others)
    assert np.asarray(first)[0, 0].tolist() == [255, 255, 255]  # the background stays white


def test_resources_encode_each_view_apart_and_cache_it_apart(tmp_path):
    image_path = tmp_path / "stamp.png"
    Image.new("RGB", (32, 32), (0, 0, 255)).save(image_path)
    doc = Document("stamp/a", "image", "", image_path=str(image_path))

    class MeanColour:  # stands in for the CNN: the mean of each channel
        def features(self, images, keep_grid=False, progress=False):
            pooled = np.array([np.asarray(img, np.float32).mean(axis=(0, 1)) for img in images])
            return ImageFeatures(pooled, pooled, None)

    class Whiten:
        key = "whiten"

        def __call__(self, image, path):
            return Image.new("RGB", image.size, (255, 255, 255))

    resources = Resources(Settings(index_store=tmp_path / "store"))
    resources._encoders[STAND_INS.image] = MeanColour()
    plain = resources.image_features([doc], STAND_INS.image).pooled
    whitened = resources.image_features([doc], STAND_INS.image, view=Whiten()).pooled
    assert plain.tolist() == [[0, 0, 255]] and whitened.tolist() == [[255, 255, 255]]
    assert resources.image_features([doc], STAND_INS.image).pooled.tolist() == [[0, 0, 255]]  # from its own cache
    assert len(list((tmp_path / "store" / "features" / STAND_INS.image).glob("*.npz"))) == 2


def test_options_are_checked_when_set_from_the_command_line():
    assert apply_overrides(DataOptions(), ["augmented_views=3", "keyword_captions=true"]) == DataOptions(
        augmented_views=3, keyword_captions=True
    )
    with pytest.raises(OverrideError, match="stamp_repeats must be at least 1"):
        apply_overrides(DataOptions(), ["stamp_repeats=0"])


def test_each_trainer_starts_from_the_data_its_served_model_was_trained_on():
    from mmr.methods import marvel, univl_dr
    from mmr.methods.lsr.settings import LSRTraining
    from mmr.retrievers import retriever_spec, served_hyperparameters

    assert served_hyperparameters(retriever_spec("dense-inbatch")) is univl_dr.SERVED_DATA
    assert served_hyperparameters(retriever_spec("marvel")) is marvel.SERVED_DATA
    assert served_hyperparameters(retriever_spec("ciea")) is marvel.SERVED_DATA  # CIEA fine-tunes MARVEL
    assert isinstance(marvel.SERVED_DATA, GridDataOptions)
    assert served_hyperparameters(retriever_spec("lsr")) == LSRTraining()  # a dataclass: its defaults
    assert served_hyperparameters(retriever_spec("procrustes")) is None


def test_visual_token_trainers_refuse_augmented_views_they_could_not_read():
    assert apply_overrides(GridDataOptions(stamp_repeats=1), ["stamp_repeats=5"]).stamp_repeats == 5
    with pytest.raises(OverrideError, match="grid features"):
        apply_overrides(GridDataOptions(), ["augmented_views=1"])
