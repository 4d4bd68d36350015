"""A dense index built with a faiss factory other than Flat is saved and loaded as it was built."""

import json
import threading
import time

import faiss
import numpy as np
import pytest

from mmr.index import DenseIndex, IndexMismatchError, IndexParams, IndexTrainingError
from mmr.index import dense as dense_module


def _params(dim, factory="Flat", search_params=None):
    return IndexParams("r", "enc", dim, "corpus", "abc", faiss_factory=factory, search_params=search_params or {})


def _unit_vectors(n, dim, seed=0):
    vectors = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _hits(index, queries, k=5):
    return [[(h.doc_id, round(h.score, 5)) for h in hits] for hits in index.search(queries, k)]


@pytest.mark.parametrize(
    ("factory", "search_params", "built_type", "read_setting"),
    [
        ("Flat", {}, faiss.IndexFlat, None),
        ("IVF4,Flat", {"nprobe": 2}, faiss.IndexIVFFlat, lambda index: index.nprobe),
        ("HNSW8", {"efSearch": 24}, faiss.IndexHNSWFlat, lambda index: index.hnsw.efSearch),
    ],
)
def test_saved_and_loaded_as_built(tmp_path, factory, search_params, built_type, read_setting):
    vectors, queries = _unit_vectors(200, 16), _unit_vectors(6, 16, seed=1)
    ids = [f"d{i}" for i in range(len(vectors))]
    params = _params(16, factory, search_params)
    built = DenseIndex.build(vectors, ids, params, use_gpu=False)
    built.save(tmp_path / "idx")
    saved = json.loads((tmp_path / "idx" / "params.json").read_text())
    assert (saved["faiss_factory"], saved["search_params"]) == (factory, search_params)

    loaded = DenseIndex.load(tmp_path / "idx", expected=params, use_gpu=False)
    read = faiss.downcast_index(loaded.index)
    assert isinstance(read, built_type)
    assert read.metric_type == faiss.METRIC_INNER_PRODUCT
    if read_setting is not None:
        assert read_setting(read) == next(iter(search_params.values()))
    assert _hits(loaded, queries) == _hits(built, queries)
    np.testing.assert_allclose(loaded.vectors(), vectors, atol=1e-6)


def test_load_keeps_the_index_it_read(tmp_path, monkeypatch):
    vectors = _unit_vectors(40, 8)
    DenseIndex.build(vectors, [f"d{i}" for i in range(40)], _params(8), use_gpu=False).save(tmp_path / "idx")
    read = []
    real_read_index = faiss.read_index
    monkeypatch.setattr(faiss, "read_index", lambda path: read.append(real_read_index(path)) or read[-1])
    loaded = DenseIndex.load(tmp_path / "idx", use_gpu=False)
    assert loaded.index is read[0]


def test_search_params_are_set_at_load_from_the_code_not_the_file(tmp_path):
    vectors = _unit_vectors(100, 8)
    ids = [f"d{i}" for i in range(100)]
    DenseIndex.build(vectors, ids, _params(8, "IVF4,Flat", {"nprobe": 1}), use_gpu=False).save(tmp_path / "idx")
    assert DenseIndex.load(tmp_path / "idx", use_gpu=False).index.nprobe == 1
    # a new nprobe needs no rebuild: what the code asks for now is what the loaded index searches with
    loaded = DenseIndex.load(tmp_path / "idx", expected=_params(8, "IVF4,Flat", {"nprobe": 3}), use_gpu=False)
    assert loaded.index.nprobe == 3
    assert loaded.params.search_params == {"nprobe": 3}


def test_another_factory_makes_the_index_stale(tmp_path):
    vectors = _unit_vectors(100, 8)
    DenseIndex.build(vectors, [f"d{i}" for i in range(100)], _params(8), use_gpu=False).save(tmp_path / "idx")
    with pytest.raises(IndexMismatchError, match="faiss_factory: index has 'Flat', expected 'HNSW8'"):
        DenseIndex.load(tmp_path / "idx", expected=_params(8, "HNSW8"))


def test_params_json_from_before_factories_loads_as_flat(tmp_path):
    vectors = _unit_vectors(10, 4)
    ids = [f"d{i}" for i in range(10)]
    DenseIndex.build(vectors, ids, _params(4), use_gpu=False).save(tmp_path / "idx")
    params_file = tmp_path / "idx" / "params.json"
    old = {k: v for k, v in json.loads(params_file.read_text()).items() if k not in ("faiss_factory", "search_params")}
    params_file.write_text(json.dumps(old))
    loaded = DenseIndex.load(tmp_path / "idx", expected=_params(4), use_gpu=False)
    assert loaded.params.faiss_factory == "Flat"
    assert isinstance(faiss.downcast_index(loaded.index), faiss.IndexFlat)
    assert [h.doc_id for h in loaded.search(vectors[3], 1)[0]] == ["d3"]


def test_too_few_vectors_to_train_says_which_factory_and_how_many():
    vectors = _unit_vectors(3, 8)
    with pytest.raises(IndexTrainingError, match=r"'IVF4,Flat' index needs at least 4 vectors.*there are 3"):
        DenseIndex.build(vectors, ["a", "b", "c"], _params(8, "IVF4,Flat"), use_gpu=False)
    with pytest.raises(IndexTrainingError, match=r"'PQ2' index cannot be trained on 3 vectors: .*256"):
        DenseIndex.build(vectors, ["a", "b", "c"], _params(8, "PQ2"), use_gpu=False)


def test_a_search_parameter_the_factory_lacks_is_refused():
    with pytest.raises(ValueError, match="nprobe=4 does not apply to a 'Flat' index"):
        DenseIndex.build(_unit_vectors(5, 4), list("abcde"), _params(4, search_params={"nprobe": 4}), use_gpu=False)


class _OverlapDetector:
    """Stands in for a GPU index: counts how many searches are inside it at once."""

    def __init__(self, index):
        self.index, self.ntotal, self.d = index, index.ntotal, index.d
        self.inside = self.most_inside = 0
        self._count_lock = threading.Lock()

    def search(self, queries, k):
        with self._count_lock:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        time.sleep(0.02)  # long enough for the other threads to arrive
        try:
            return self.index.search(queries, k)
        finally:
            with self._count_lock:
                self.inside -= 1


def _search_from_threads(search, threads=8):
    barrier = threading.Barrier(threads)
    results = [None] * threads

    def run(slot):
        barrier.wait()
        results[slot] = search()

    workers = [threading.Thread(target=run, args=(slot,)) for slot in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return results


def test_searches_of_a_gpu_index_are_serialised(monkeypatch):
    vectors = _unit_vectors(50, 8)
    monkeypatch.setattr(dense_module.gpu, "faiss_gpu_available", lambda: True)
    monkeypatch.setattr(dense_module.gpu, "copy_to_gpu", lambda index, factory: _OverlapDetector(index))
    index = DenseIndex.build(vectors, [f"d{i}" for i in range(50)], _params(8))
    assert index.on_gpu
    results = _search_from_threads(lambda: _hits(index, vectors[:2]))
    assert index.index.most_inside == 1
    assert all(result == results[0] for result in results)


def test_overlap_detector_sees_unserialised_searches():
    """Without the lock the same threads do overlap, so the test above can fail."""
    detector = _OverlapDetector(DenseIndex.build(_unit_vectors(50, 8), [f"d{i}" for i in range(50)], _params(8)).index)
    _search_from_threads(lambda: detector.search(_unit_vectors(2, 8), 3))
    assert detector.most_inside > 1


def test_cpu_searches_take_no_lock():
    index = DenseIndex.build(_unit_vectors(5, 4), list("abcde"), _params(4), use_gpu=False)
    assert not index.on_gpu
    assert not isinstance(index._search_guard, type(threading.Lock()))
