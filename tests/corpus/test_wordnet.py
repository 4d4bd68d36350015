from pathlib import Path

import pytest

from mmr.corpus.wordnet import (
    build_wordnet_corpus,
    read_lemma_vocabulary,
    read_noun_synsets,
    split_gloss,
)

# Real WordNet 3.0 lines (pointers trimmed where the count says so) and a few made in the same format.
HEADER = (
    "  1 This software and database is being provided to you, the LICENSEE, by  \n"
    "  2 Princeton University under the following license.  \n"
)
DOG = (
    "02084071 05 n 03 dog 0 domestic_dog 0 Canis_familiaris 0 002 @ 02083346 n 0000 "
    "@ 01317541 n 0000 | a member of the genus Canis (probably descended from the common wolf) "
    "that has been domesticated by man since prehistoric times; occurs in many breeds; "
    '"the dog barked all night"  \n'
)
DOMESTIC = (
    "01317541 05 n 02 domestic_animal 0 domesticated_animal 0 001 @ 00015388 n 0000 "
    "| any of various animals that have been tamed and made fit for a human environment  \n"
)
LOGIC = "05664069 09 n 03 logic 1 logical_system 0 system_of_logic 0 001 @ 05661996 n 0000 | a system of reasoning  \n"
SHORT = "09999999 18 n 01 cad 0 000 | a scoundrel  \n"
QUOTES = (
    "00000001 10 n 01 duty 0 000 | the social force that binds you to the courses of action "
    'demanded by that force; "we must instill a sense of duty in our children"; "every right '
    'implies a responsibility; every opportunity, an obligation"- John D.Rockefeller Jr  \n'
)
# Eleven lemmas: the word count is hexadecimal ("0b").
MANY = (
    "00000002 05 n 0b "
    + " ".join(f"hound_{i} 0" for i in range(11))
    + " 000 | a dog used in hunting game by scent or sight  \n"
)
DOG_SENSE_2 = "00000003 18 n 02 dog 1 frump 0 000 | a dull unattractive unpleasant girl or woman  \n"


def fake_dict(tmp_path: Path, extra: int = 0) -> Path:
    lines = [HEADER, DOG, DOMESTIC, LOGIC, SHORT, QUOTES, MANY, DOG_SENSE_2]
    lines += [
        f"{10000000 + i:08d} 06 n 01 thing_{i} 0 000 | an artifact made for test number {i}  \n" for i in range(extra)
    ]
    (tmp_path / "data.noun").write_text("".join(lines), encoding="utf-8")
    (tmp_path / "index.noun").write_text(
        "  1 licence header  \ndog n 2 1 @ 2 0 02084071 00000003  \nfire_truck n 1 0 1 0 03345487  \n"
    )
    (tmp_path / "index.verb").write_text("run v 1 0 1 0 00000000  \n")
    return tmp_path


def test_read_noun_synsets_parses_real_lines(tmp_path):
    synsets = {s.offset: s for s in read_noun_synsets(fake_dict(tmp_path))}
    assert len(synsets) == 7  # header lines skipped
    dog = synsets[2084071]
    assert dog.lemmas == ("dog", "domestic dog", "Canis familiaris")
    assert dog.definition.startswith("a member of the genus Canis (probably descended")
    assert dog.definition.endswith("occurs in many breeds")
    assert dog.examples == ("the dog barked all night",)
    assert dog.lexname == "noun.animal" and dog.doc_id == "wn/02084071-n"
    assert synsets[2].lemmas[-1] == "hound 10" and len(synsets[2].lemmas) == 11


def test_examples_with_semicolons_and_attributions_are_removed(tmp_path):
    duty = {s.offset: s for s in read_noun_synsets(fake_dict(tmp_path))}[1]
    assert duty.definition == ("the social force that binds you to the courses of action demanded by that force")
    assert len(duty.examples) == 2 and duty.examples[1].startswith("every right implies")


def test_split_gloss_without_examples():
    assert split_gloss("a system of reasoning") == ("a system of reasoning", ())


def test_missing_data_file_names_the_package(tmp_path):
    with pytest.raises(FileNotFoundError, match="wordnet-base"):
        read_noun_synsets(tmp_path)


def test_corpus_documents_hold_definition_not_lemmas(tmp_path):
    docs = {d.id: d for d in build_wordnet_corpus(fake_dict(tmp_path), size=100)}
    assert "wn/09999999-n" not in docs  # "a scoundrel": under 4 words
    assert "wn/05664069-n" in docs  # "a system of reasoning": exactly 4 words
    dog = docs["wn/02084071-n"]
    assert dog.modality == "text" and "dog" not in dog.text.lower().split()
    assert '"' not in dog.text
    assert dog.metadata == {
        "source": "wordnet",
        "lemmas": "dog, domestic dog, Canis familiaris",
        "lexname": "noun.animal",
        "category": "animal",
    }


def test_preferred_words_come_first_then_seeded_sample(tmp_path):
    root = fake_dict(tmp_path, extra=200)
    docs = build_wordnet_corpus(root, size=10, seed=1, prefer_words=["Dog", " logic "])
    ids = {d.id for d in docs}
    assert len(docs) == 10
    # Both senses of "dog" and the "logic" synset are in, whatever the sample.
    assert {"wn/02084071-n", "wn/00000003-n", "wn/05664069-n"} <= ids
    assert docs == build_wordnet_corpus(root, size=10, seed=1, prefer_words=["logic", "dog"])
    other_seed = {d.id for d in build_wordnet_corpus(root, size=10, seed=2, prefer_words=["dog"])}
    assert other_seed != ids


def test_size_larger_than_available_returns_all_usable(tmp_path):
    docs = build_wordnet_corpus(fake_dict(tmp_path), size=1000)
    assert len(docs) == 6


def test_lemma_vocabulary_reads_every_index(tmp_path):
    vocabulary = read_lemma_vocabulary(fake_dict(tmp_path))
    assert vocabulary == {"dog", "fire truck", "run"}
