"""The extra distillation pairs never touch a held-out item or a held-out query."""

from mmr.corpus.wordnet import Synset
from mmr.training.data import Example, TrainingData, pick_unlabelled_synsets
from mmr.types import Document


def _synset(offset: int, *lemmas: str, definition: str = "a thing that is described in words") -> Synset:
    return Synset(offset, 5, lemmas, definition, ())


SYNSETS = [
    _synset(1, "frog"),  # in the collection: an item of some split
    _synset(2, "Bank"),  # a test query's lemma (in another case and spacing)
    _synset(3, "river bank", "bank"),  # a second lemma is a held-out query
    _synset(4, "tadpole", definition="too short"),  # too short a gloss, as the collection's own rule
    _synset(5, "lily pad"),
    _synset(6, "pond"),
    _synset(7, "heron"),
]


def test_no_collection_item_no_held_out_query_and_no_short_gloss():
    examples, documents = pick_unlabelled_synsets(SYNSETS, {"wn/00000001-n"}, ["bank ", "unrelated"], count=10)
    assert sorted(e.query for e in examples) == ["heron", "lily pad", "pond"]
    assert {e.positive_id for e in examples} == set(documents)
    assert all(doc.modality == "text" and doc.text.startswith("a thing") for doc in documents.values())


def test_sample_is_seeded_and_capped_at_count():
    first, _ = pick_unlabelled_synsets(SYNSETS, set(), [], count=2, seed=3)
    again, _ = pick_unlabelled_synsets(SYNSETS, set(), [], count=2, seed=3)
    assert first == again and len(first) == 2


def test_extra_pairs_extend_training_data_without_touching_its_images():
    image = Document("img", "image", "A frog.", image_path="frog.png")
    data = TrainingData([Example("A frog.", "img", "a frog")], {"img": image})
    examples, documents = pick_unlabelled_synsets(SYNSETS[4:], set(), [], count=3)
    extended = data.with_examples(examples, documents)
    assert len(extended.examples) == 4 and extended.image_ids == ["img"]
    assert len(extended.text_ids) == 3 and extended.fingerprint != data.fingerprint
