import json

import numpy as np
import pytest

from mmr.index import DenseIndex, IndexMismatchError, IndexParams


def _params(dim, fingerprint="abc", encoder="enc"):
    return IndexParams("r", encoder, dim, "corpus", fingerprint)


@pytest.mark.parametrize(("n", "dim", "k"), [(1, 3, 1), (7, 5, 3), (257, 31, 10), (10, 8, 50)])
def test_search_matches_brute_force(n, dim, k):
    rng = np.random.default_rng(n * dim)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = rng.normal(size=(4, dim)).astype(np.float32)
    ids = [f"d{i}" for i in range(n)]
    index = DenseIndex.build(vectors, ids, _params(dim))
    results = index.search(queries, k)
    for query, hits in zip(queries, results):
        expected = np.argsort(-(vectors @ query), kind="stable")[: min(k, n)]
        assert [hit.doc_id for hit in hits] == [ids[i] for i in expected]
        assert [hit.rank for hit in hits] == list(range(1, len(expected) + 1))
        np.testing.assert_allclose([h.score for h in hits], (vectors @ query)[expected], rtol=1e-5)


def test_save_load_roundtrip_and_mismatch(tmp_path):
    vectors = np.eye(4, dtype=np.float32)
    index = DenseIndex.build(vectors, list("abcd"), _params(4))
    index.save(tmp_path / "idx")
    assert json.loads((tmp_path / "idx" / "params.json").read_text())["count"] == 4
    loaded = DenseIndex.load(tmp_path / "idx", expected=_params(4))
    assert [h.doc_id for h in loaded.search(vectors[2], 1)[0]] == ["c"]
    with pytest.raises(IndexMismatchError, match="corpus_fingerprint.*python -m mmr build"):
        DenseIndex.load(tmp_path / "idx", expected=_params(4, fingerprint="changed"))
    with pytest.raises(IndexMismatchError, match="encoder"):
        DenseIndex.load(tmp_path / "idx", expected=_params(4, encoder="other"))
    with pytest.raises(IndexMismatchError, match="no index"):
        DenseIndex.load(tmp_path / "missing")


def test_rejects_wrong_shapes():
    with pytest.raises(ValueError):
        DenseIndex.build(np.zeros((3, 4), np.float32), ["a", "b"], _params(4))
    with pytest.raises(ValueError):
        DenseIndex.build(np.zeros((2, 5), np.float32), ["a", "b"], _params(4))
