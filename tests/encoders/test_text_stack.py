"""The text-backbone interface on its three families: each stack's pooled vector against the family's own
forward pass (written here with transformers' models, not through the stack), the split at every layer, what
training may change, and a saved architecture reopened."""

from __future__ import annotations

import pytest
import torch

from mmr.encoders.text_stack import BertStack, CLIPTextStack, T5Stack, open_text_stack, saved_text_stack
from tests.tiny_bert import save_tiny_bert
from tests.tiny_clip import save_tiny_clip
from tests.tiny_t5 import save_tiny_t5

WORDS = ["a", "red", "bird", "on", "the", "tree", "blue", "flower"]
TEXTS = ["a red bird", "the blue flower on a tree", "tree"]


def _reference(family: str, folder, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    from transformers import AutoModel, CLIPTextModel, T5Model

    if family == "bert":
        hidden = AutoModel.from_pretrained(folder).eval()(input_ids=ids, attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).float()
        return (hidden * weights).sum(1) / weights.sum(1)
    if family == "clip":
        return CLIPTextModel.from_pretrained(folder).eval()(input_ids=ids, attention_mask=mask).pooler_output
    start = torch.zeros((len(ids), 1), dtype=torch.long)
    model = T5Model.from_pretrained(folder).eval()
    return model(input_ids=ids, attention_mask=mask, decoder_input_ids=start).last_hidden_state[:, 0]


@pytest.fixture(scope="module", params=["bert", "clip", "t5"])
def backbone(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    if request.param == "bert":
        save_tiny_bert(folder, WORDS, layers=3)
    elif request.param == "clip":
        save_tiny_clip(folder, WORDS, layers=3)
    else:
        save_tiny_t5(folder, WORDS, layers=3)
    return request.param, folder


def test_each_family_opens_as_its_stack(backbone):
    family, folder = backbone
    expected = {"bert": BertStack, "clip": CLIPTextStack, "t5": T5Stack}[family]
    assert type(open_text_stack(folder)) is expected


def test_the_pooled_vector_is_the_familys_own(backbone):
    family, folder = backbone
    stack = open_text_stack(folder).eval()
    ids, mask = stack.tokenize(TEXTS, 16)
    assert mask.sum(1).unique().numel() > 1, "the texts must pad, or padding is not tested"
    with torch.no_grad():
        ours = stack.encode_ids(ids, mask)
        theirs = _reference(family, folder, ids, mask)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)


def test_lower_then_upper_is_the_whole_pass_at_every_split(backbone):
    stack = open_text_stack(backbone[1]).eval()
    ids, mask = stack.tokenize(TEXTS, 16)
    embeds = stack.word_embeddings(ids)
    with torch.no_grad():
        whole = stack.embed(embeds, mask)
        for k in range(stack.num_layers + 1):
            torch.testing.assert_close(stack.upper(stack.lower(embeds, mask, k), mask, k), whole, atol=1e-5, rtol=1e-4)


def test_upper_parameters_are_the_top_layers_and_never_the_word_table(backbone):
    stack = open_text_stack(backbone[1])
    words = stack.model.get_input_embeddings().weight
    top = dict(stack.upper_parameters(stack.num_layers - 1))
    assert top and all(parameter is not words for parameter in top.values())
    everything = dict(stack.upper_parameters(0))
    assert set(top) < set(everything)
    # a gradient through upper(., ., k) reaches exactly the parameters upper_parameters(k) names
    ids, mask = stack.tokenize(TEXTS, 16)
    k = stack.num_layers - 1
    with torch.no_grad():
        hidden = stack.lower(stack.word_embeddings(ids), mask, k)
    stack.zero_grad()
    stack.upper(hidden, mask, k).sum().backward()
    reached = {name for name, p in stack.model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    # what the bottom shares stays frozen, or a cached bottom would go stale: T5's word table (its decoder's
    # input too) and the relative-position table of its first block, which every block reads
    shared_with_bottom = {"shared.weight", "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"}
    assert reached - shared_with_bottom <= set(top), sorted(reached - set(top))


def test_lead_embeddings_are_the_tokens_every_text_starts_with(backbone):
    stack = open_text_stack(backbone[1])
    ids, _ = stack.tokenize(TEXTS, 16)
    lead = stack.lead_embeddings(len(TEXTS))
    assert lead.shape == (len(TEXTS), stack.lead_tokens, stack.hidden_size)
    torch.testing.assert_close(lead, stack.word_embeddings(ids[:, : stack.lead_tokens]))


def test_wrapped_ids_are_what_the_tokenizer_gives_the_text(backbone):
    stack = open_text_stack(backbone[1])
    for text in TEXTS:
        content = stack.tokenizer(text, add_special_tokens=False)["input_ids"]
        assert stack.wrap_ids(content) == stack.tokenizer(text)["input_ids"]


def test_a_saved_architecture_reopens_and_takes_its_weights(backbone, tmp_path):
    stack = open_text_stack(backbone[1]).eval()
    stack.save_config(tmp_path)
    again = saved_text_stack(tmp_path)
    assert type(again) is type(stack)
    again.load_state_dict(stack.state_dict())
    ids, mask = stack.tokenize(TEXTS, 16)
    with torch.no_grad():
        torch.testing.assert_close(again.eval().encode_ids(ids, mask), stack.encode_ids(ids, mask))


def test_keep_first_layers_cuts_the_stack(backbone):
    stack = open_text_stack(backbone[1])
    stack.keep_first_layers(1)
    assert stack.num_layers == 1
    ids, mask = stack.tokenize(TEXTS, 16)
    assert stack.encode_ids(ids, mask).shape == (len(TEXTS), stack.hidden_size)
    with pytest.raises(ValueError, match="keeps 1..1"):
        stack.keep_first_layers(2)


def test_an_unknown_family_says_which_it_can_open(tmp_path):
    from transformers import GPT2Config

    GPT2Config(n_layer=1, n_embd=8, n_head=2).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="'gpt2' model; the methods can open"):
        open_text_stack(tmp_path)
