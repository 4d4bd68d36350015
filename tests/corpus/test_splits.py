import json
import random
from collections import Counter
from pathlib import Path

import pytest

from mmr.corpus.splits import (
    SPLITS_VERSION,
    build_benchmark,
    load_benchmark,
    normalise_description,
    read_qrels,
    read_queries,
    split_by_item,
)
from mmr.types import Document


def stamp(doc_id: str, text: str) -> Document:
    return Document(id=f"stamp/{doc_id}", modality="image", text=text, image_path=f"/m/{doc_id}.png")


def synset(offset: int, lemmas: str, text: str = "a definition long enough here") -> Document:
    return Document(
        id=f"wn/{offset:08d}-n", modality="text", text=text, metadata={"source": "wordnet", "lemmas": lemmas}
    )


# --------------------------------------------------------------------------- split_by_item


def test_normalise_description():
    assert normalise_description("A  Flower.") == normalise_description("a flower") == "a flower"
    assert normalise_description("The letter \u00c9!") == "the letter \u00e9"


def keys_with_duplicates(n_groups=1000):
    keys = [f"item{g}-{copy}" for g in range(n_groups) for copy in range(1 + g % 3)]
    return keys, (lambda key: key.split("-")[0])


def test_items_of_one_group_share_a_split():
    keys, group_of = keys_with_duplicates()
    splits = split_by_item(keys, group_of)
    by_group: dict[str, set[str]] = {}
    for key, split in splits.items():
        by_group.setdefault(group_of(key), set()).add(split)
    assert all(len(found) == 1 for found in by_group.values())
    assert set(splits) == set(keys)


def test_item_fractions_close_to_target():
    keys, group_of = keys_with_duplicates()
    counts = Counter(split_by_item(keys, group_of, fractions=(0.5, 0.15, 0.35)).values())
    for split, target in (("train", 0.5), ("dev", 0.15), ("test", 0.35)):
        assert abs(counts[split] / len(keys) - target) < 0.01


def test_deterministic_and_independent_of_input_order():
    keys, group_of = keys_with_duplicates(300)
    shuffled = keys[:]
    random.Random(4).shuffle(shuffled)
    assert split_by_item(keys, group_of) == split_by_item(shuffled, group_of)
    assert split_by_item(keys, group_of, seed=14) != split_by_item(keys, group_of)


def test_zero_fraction_split_gets_nothing():
    keys, group_of = keys_with_duplicates(200)
    assert "dev" not in split_by_item(keys, group_of, fractions=(0.7, 0.0, 0.3)).values()


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (0.5, -0.1, 0.6), (0, 0, 0)])
def test_bad_fractions_raise(fractions):
    with pytest.raises(ValueError, match="fractions"):
        split_by_item(["a"], str, fractions=fractions)


# --------------------------------------------------------------------------- build_benchmark


def small_corpora():
    stamps = [
        stamp("plants/flower1", "A flower."),
        stamp("plants/flower2", "a  flower"),
        stamp("plants/flower3", "A Flower!"),
        stamp("animals/cat", "A cat."),
    ]
    stamps += [stamp(f"misc/thing{i}", f"Thing number {i}.") for i in range(60)]
    wordnet = [
        synset(1, "bank, depository financial institution"),
        synset(2, "bank"),  # same first lemma: both answer the query "bank"
        synset(3, "savings bank, bank"),  # has "bank" too, though not first
        synset(4, "ox"),  # too short to be a query, still a document
        synset(5, "Canis familiaris, dog"),
    ]
    wordnet += [synset(100 + i, f"word{i}") for i in range(60)]
    return stamps, wordnet


@pytest.fixture
def bench(tmp_path) -> Path:
    build_benchmark(*small_corpora(), tmp_path)
    return tmp_path


def all_queries(root: Path, setting: str) -> dict[str, tuple[str, str, dict]]:
    found = {}
    for split in ("train", "dev", "test"):
        b = load_benchmark(root, setting, split)
        assert set(b.queries) == set(b.qrels)
        for qid, text in b.queries.items():
            found[qid] = (split, text, b.qrels[qid])
    return found


def test_image_queries_find_every_stamp_with_the_description(bench):
    queries = all_queries(bench, "images")
    assert len(queries) == 62  # three spellings of "a flower" are one query
    flower = [q for q in queries.values() if normalise_description(q[1]) == "a flower"]
    assert len(flower) == 1
    assert flower[0][2] == {f"stamp/plants/flower{i}": 1 for i in (1, 2, 3)}
    assert all(qid.startswith("img-") for qid in queries)


def test_docs_of_a_query_share_its_split(bench):
    splits = json.loads((bench / SPLITS_VERSION / "splits.json").read_text())
    for split, _, relevant in all_queries(bench, "mixed").values():
        assert {splits[doc_id] for doc_id in relevant} == {split}


def test_mixed_adds_lemma_queries(bench):
    queries = all_queries(bench, "mixed")
    texts = {text: relevant for _, text, relevant in queries.values()}
    assert texts["bank"] == {"wn/00000001-n": 1, "wn/00000002-n": 1, "wn/00000003-n": 1}
    assert texts["Canis familiaris"] == {"wn/00000005-n": 1}
    assert "ox" not in texts
    assert len(queries) == len(all_queries(bench, "images")) + 1 + 1 + 1 + 60
    # savings bank is a query of its own
    assert texts["savings bank"] == {"wn/00000003-n": 1}


def test_files_are_identical_whatever_the_input_order(tmp_path):
    stamps, wordnet = small_corpora()
    build_benchmark(stamps, wordnet, tmp_path / "a")
    build_benchmark(stamps[::-1], random.Random(1).sample(wordnet, len(wordnet)), tmp_path / "b")
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files_a) == 2 + 2 * 3 * 2
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_qrels_and_queries_file_formats(bench):
    folder = bench / SPLITS_VERSION / "mixed"
    for line in (folder / "test.qrels").read_text().splitlines():
        qid, zero, doc_id, grade = line.split(" ")
        assert zero == "0" and grade == "1" and doc_id.startswith(("stamp/", "wn/"))
    for line in (folder / "test.queries.tsv").read_text().splitlines():
        assert line.count("\t") == 1
    assert read_queries(folder / "test.queries.tsv") == load_benchmark(bench, "mixed", "test").queries
    assert read_qrels(folder / "test.qrels") == load_benchmark(bench, "mixed", "test").qrels


def test_manifest_counts_match_files(bench):
    manifest = json.loads((bench / SPLITS_VERSION / "manifest.json").read_text())
    assert manifest["version"] == SPLITS_VERSION and manifest["seed"] == 13
    assert sum(manifest["documents"]["stamps"].values()) == 64
    assert sum(manifest["documents"]["wordnet"].values()) == 65
    for setting in ("images", "mixed"):
        for split, counts in manifest["queries"][setting].items():
            b = load_benchmark(bench, setting, split)
            assert counts["queries"] == len(b.queries)
            assert counts["qrels"] == sum(len(r) for r in b.qrels.values())


def test_unknown_setting_lists_valid_ones(bench):
    with pytest.raises(ValueError, match=r"Available: \['images', 'mixed'\]"):
        load_benchmark(bench, "audio", "test")
    with pytest.raises(ValueError, match="Available"):
        load_benchmark(bench, "images", "validation")
    with pytest.raises(FileNotFoundError):
        load_benchmark(bench / "nowhere", "images", "test")
