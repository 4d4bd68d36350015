"""The sparse retriever's query students, taught to give the teacher's vectors: the first layers of a BERT, and a
static table of token vectors.

Each must learn (cosine to the teacher rises from where it starts), survive a save and load, stand in for the
teacher on every text query (the teacher's text side never runs), and encode an image query's words in the
teacher's image side, where the pixels' part stays the teacher's.
"""

import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmr.config import Settings
from mmr.encoders.base import ImageFeatures
from mmr.methods.lsr.head import SparseHead, Vocabulary
from mmr.methods.lsr.model import LSRConfig, LSRModel
from mmr.methods.lsr.student import QueryStudent, StaticQueryStudent, load_student, teach_student
from mmr.methods.univl_model import UniVLEncoder, build_model
from mmr.retrievers.base import Resources
from tests.methods.test_univl_dr import tiny_config, words
from tests.tiny_bert import save_tiny_bert

WORDS = ["a", "red", "blue", "flower", "cat", "dog", "house", "tree", "big", "small", "boat", "car", "bird", ","]
TEXTS = ["a red flower", "a big dog", "blue house", "small cat", "a tree", "red car", "big boat", "a bird"]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return save_tiny_bert(tmp_path_factory.mktemp("student-bert"), WORDS, layers=3)


def _targets(texts, dim=8, seed=3):
    """A teacher no student starts near: a fixed random unit vector per text."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(len(texts), dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_the_student_keeps_only_the_first_layers_and_learns_the_teachers_vectors(tiny_bert):
    torch.manual_seed(0)
    student = QueryStudent.from_base(tiny_bert, 1, out_dim=8)
    assert student.layers == 1 and student.stack.model.config.num_hidden_layers == 1
    targets = _targets(TEXTS)
    words = student.stack.model.get_input_embeddings().weight.detach().clone()
    before = float((student.encode(TEXTS) * targets).sum(1).mean())
    losses = teach_student(student, TEXTS, targets, 150, 4, 1e-2, np.random.default_rng(0))
    after = float((student.encode(TEXTS) * targets).sum(1).mean())
    assert losses[-1] < losses[0] / 4
    assert before < 0.5 < 0.8 < after
    assert torch.equal(student.stack.model.get_input_embeddings().weight, words)  # the word embeddings stay the base's
    np.testing.assert_allclose(np.linalg.norm(student.encode(TEXTS), axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("layers", [0, 4])
def test_a_student_cannot_have_more_layers_than_its_base_or_none(tiny_bert, layers):
    with pytest.raises(ValueError, match="keeps 1..3"):
        QueryStudent.from_base(tiny_bert, layers, out_dim=8)


def test_the_student_survives_save_and_load(tiny_bert, tmp_path):
    torch.manual_seed(0)
    student = QueryStudent.from_base(tiny_bert, 2, out_dim=8)
    teach_student(student, TEXTS, _targets(TEXTS), 2, 4, 1e-2, np.random.default_rng(0))
    student.save(tmp_path / "student")
    loaded = QueryStudent.load(tmp_path / "student")
    assert loaded.layers == 2
    np.testing.assert_allclose(loaded.encode(TEXTS), student.encode(TEXTS), atol=1e-6)


class CountingTeacher:
    """A UniVL encoder that counts the texts its own text tower encodes."""

    def __init__(self, encoder: UniVLEncoder):
        self.encoder = encoder
        self.needs_grid, self.dim = False, encoder.dim
        self.texts_encoded = 0

    def encode_texts(self, texts):
        self.texts_encoded += len(texts)
        return self.encoder.encode_texts(texts)

    def verbalisations(self, features):
        return self.encoder.verbalisations(features)

    def encode_images(self, features, encode_words=None):
        words_of = encode_words or self.encode_texts
        return self.encoder.encode_images(features, encode_words=words_of)


@pytest.fixture()
def univl_teacher(tiny_bert):
    torch.manual_seed(1)
    model, tokenizer = build_model(tiny_config(tiny_bert))
    torch.nn.init.normal_(model.image_proj[-1].weight, std=0.5)  # the pixels count, not only the words
    return CountingTeacher(UniVLEncoder(model.eval(), tokenizer, words))


def _features():
    rng = np.random.default_rng(2)
    logits = np.zeros((2, 8), np.float32)
    logits[0, [0, 1]] = [5, 4]  # "cat, dog"
    logits[1, [6, 2]] = [5, 4]  # "boat, flower"
    return ImageFeatures(rng.normal(size=(2, 8)).astype(np.float32), logits, None)


def test_the_teachers_image_side_takes_the_verbalisation_from_whoever_encodes_words(univl_teacher):
    features, encoder = _features(), univl_teacher.encoder
    own = encoder.encode_images(features)
    np.testing.assert_allclose(encoder.encode_images(features, encode_words=encoder.encode_texts), own, atol=1e-6)
    assert encoder.verbalisations(features) == ["cat, dog", "boat, flower"]
    fixed = np.tile(_targets(["x"], dim=encoder.dim), (2, 1))
    other = encoder.encode_images(features, encode_words=lambda texts: fixed[: len(texts)])
    with torch.no_grad():
        projected = encoder.model.image_proj(torch.from_numpy(features.pooled))
    expected = F.normalize(projected + torch.from_numpy(fixed), dim=-1).numpy()
    np.testing.assert_allclose(other, expected, atol=1e-5)


def _static_student(tiny_bert, teacher_encode):
    from transformers import AutoTokenizer

    return StaticQueryStudent.from_teacher(AutoTokenizer.from_pretrained(str(tiny_bert)), teacher_encode)


def _hashed_teacher(texts, dim=8):
    """A stand-in teacher: a fixed unit vector per distinct text."""
    vectors = [np.random.default_rng(zlib.crc32(text.encode())).normal(size=dim) for text in texts]
    return np.asarray([v / np.linalg.norm(v) for v in vectors], np.float32)


def test_the_static_student_starts_from_the_teachers_vector_of_each_token_alone(tiny_bert):
    student = _static_student(tiny_bert, _hashed_teacher)
    np.testing.assert_allclose(student.encode(["flower"]), _hashed_teacher(["flower"]), atol=1e-6)
    table = student.tokens.weight.detach()
    special = student.tokenizer.all_special_ids
    assert float(table[special].abs().sum()) == 0.0  # never looked up, never given a vector
    # a text is the normalised sum of its tokens' rows, whatever their order
    both = _hashed_teacher(["red"]) + _hashed_teacher(["flower"])
    np.testing.assert_allclose(student.encode(["flower red"])[0], both[0] / np.linalg.norm(both[0]), atol=1e-6)
    np.testing.assert_allclose(student.encode(["red flower"]), student.encode(["flower red"]), atol=1e-6)
    assert not student.encode([""]).any()  # no tokens: a zero vector, which matches nothing, and no error


def test_the_static_student_learns_and_leaves_unseen_tokens_as_the_teacher_gave_them(tiny_bert, tmp_path):
    student = _static_student(tiny_bert, _hashed_teacher)
    targets = _targets(TEXTS)
    unseen = student.tokenizer.convert_tokens_to_ids(["house", "cat"])
    kept = student.tokens.weight.detach()[unseen].clone()
    train = [t for t in TEXTS if "house" not in t and "cat" not in t]
    rows = [TEXTS.index(t) for t in train]
    before = float((student.encode(train) * targets[rows]).sum(1).mean())
    losses = teach_student(student, train, targets[rows], 150, 3, 5e-2, np.random.default_rng(0))
    after = float((student.encode(train) * targets[rows]).sum(1).mean())
    assert losses[-1] < losses[0] / 4
    assert before < 0.5 < 0.8 < after
    assert torch.equal(student.tokens.weight.detach()[unseen], kept)  # sparse updates touch only seen tokens

    student.save(tmp_path / "static")
    loaded = load_student(tmp_path / "static")
    assert isinstance(loaded, StaticQueryStudent)
    np.testing.assert_allclose(loaded.encode(TEXTS), student.encode(TEXTS), atol=1e-6)


@pytest.mark.parametrize("kind", ["layers", "static"])
def test_a_model_with_a_student_never_runs_the_teachers_text_side_for_a_query(univl_teacher, tiny_bert, tmp_path, kind):
    from transformers import AutoTokenizer

    vocabulary = Vocabulary(AutoTokenizer.from_pretrained(str(tiny_bert)))
    torch.manual_seed(0)
    head = SparseHead(univl_teacher.dim, torch.randn(vocabulary.size, 6), vocabulary.usable)
    if kind == "layers":
        student = QueryStudent.from_base(tiny_bert, 1, out_dim=univl_teacher.dim)
    else:
        student = StaticQueryStudent.from_teacher(vocabulary.tokenizer, univl_teacher.encoder.encode_texts)
    layers = 1 if kind == "layers" else 0
    config = LSRConfig(
        "dense-inbatch", "x", univl_teacher.dim, 6, vocabulary.size, query_student=kind, query_student_layers=layers
    )
    model = LSRModel(config, head, vocabulary, univl_teacher, student)
    queries = model.encode_queries(["a red flower", "big dog"])
    images = model.encode_image_queries(_features())
    assert univl_teacher.texts_encoded == 0
    expected = model.sparsify(univl_teacher.encoder.encode_images(_features(), encode_words=student.encode))
    assert abs(images - expected).max() < 1e-5
    assert abs(queries - model.sparsify(student.encode(["a red flower", "big dog"]))).max() < 1e-6
    model.encode_images(_features())  # documents: the teacher's own image side, words and all
    assert univl_teacher.texts_encoded == 2

    model.save(tmp_path / "lsr")
    loaded = LSRModel.load(tmp_path / "lsr", Resources(Settings(index_store=tmp_path)), teacher=univl_teacher)
    assert type(loaded.student) is type(student)
    assert abs(loaded.encode_queries(["a red flower", "big dog"]) - queries).max() < 1e-6
    with pytest.raises(ValueError, match="query student"):
        LSRModel(config, head, vocabulary, univl_teacher, None)


def test_the_training_stage_teaches_a_student_and_sets_what_the_head_will_read():
    """`teach_query_student` (the stage `mmr train lsr --set query_student=static` runs): the head then reads
    the student's vectors of every training and dev query, not the teacher's."""
    from types import SimpleNamespace

    from mmr.methods.lsr.tables import TeacherTables
    from mmr.methods.lsr.training import LSRTraining, teach_query_student
    from tests.methods.test_lsr import FakeTeacher

    teacher = FakeTeacher()  # no verbalisations: only the queries are taught
    texts = ["a red flower", "big dog", "blue house", "small cat", "a tree"]
    queries = torch.from_numpy(teacher.encode_texts(texts))
    tables = TeacherTables(queries, [], queries, [], np.arange(5), np.arange(5), query_texts=texts)
    probe = SimpleNamespace(name="toy", query_texts=["red dog", "a house"])
    probe.queries = probe.query_inputs = torch.from_numpy(teacher.encode_texts(probe.query_texts))
    hp = LSRTraining(query_student="static", student_epochs=2, student_batch_size=2)
    student, entry = teach_query_student(teacher, tables, None, None, [probe], hp, np.random.default_rng(0))
    np.testing.assert_allclose(tables.query_inputs.numpy(), student.encode(texts), atol=1e-6)
    np.testing.assert_allclose(probe.query_inputs.numpy(), student.encode(probe.query_texts), atol=1e-6)
    assert probe.query_inputs is not probe.queries
    assert entry["kind"] == "static" and entry["texts"] == 5 and len(entry["loss"]) == 2
    _, after = entry["dev_toy_cosine_to_teacher"]
    assert after > 0.9  # the teacher here is a sum of word vectors, which a token table can nearly copy
