"""A tiny Dense2Sparse checkpoint a test creates, in the published layout (no model hub here): the head as
thongnt99/lsr-multimodal's ``D2SModel.save_pretrained`` writes it, beside a ``blip`` role (a tiny
``BlipForImageTextRetrieval`` with its BERT tokenizer and image processor) and an ``mlm_head`` role (a tiny
DistilBERT MLM with its WordPiece tokenizer)."""

from __future__ import annotations

from pathlib import Path

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
DENSE_SIZE = 8  # BLIP's projection here; 256 in the published model
IMAGE_SIZE = 32


def published_d2s_classes():
    """A config and model shaped as the published ones (model_type "d2s", modules proj, vocab_layer_norm,
    vocab_projector), taking the MLM head as an argument where theirs downloads it by name."""
    from torch import nn
    from transformers import PretrainedConfig, PreTrainedModel

    class D2SConfig(PretrainedConfig):
        model_type = "d2s"

        def __init__(self, mlm_head="distilbert-base-uncased", dense_size=256, **kwargs):
            self.mlm_head, self.dense_size = mlm_head, dense_size
            super().__init__(**kwargs)

    class D2SModel(PreTrainedModel):
        config_class = D2SConfig

        def __init__(self, config, mlm):
            super().__init__(config)
            self.proj = nn.Linear(config.dense_size, mlm.config.dim)
            self.vocab_layer_norm = mlm.vocab_layer_norm
            self.vocab_projector = mlm.vocab_projector

    return D2SConfig, D2SModel


def save_tiny_blip(folder: Path, words: list[str], seed: int = 0) -> Path:
    """A one-layer, 16-wide BLIP retrieval model: 32-pixel images in 8-pixel patches, 8-d projections."""
    import torch
    from transformers import BertTokenizerFast, BlipConfig, BlipForImageTextRetrieval, BlipImageProcessorPil

    vocab = SPECIAL + words
    BertTokenizerFast(vocab={word: i for i, word in enumerate(vocab)}).save_pretrained(folder)
    BlipImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}).save_pretrained(folder)
    tower = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    config = BlipConfig(
        text_config=dict(
            **tower,
            vocab_size=len(vocab),
            max_position_embeddings=40,  # room for BLIP's 35 tokens, not for an untruncated long text
            encoder_hidden_size=16,
            pad_token_id=0,
            bos_token_id=2,
            sep_token_id=3,
        ),
        # BLIP's vision tower initialises at 1e-10 (its weights always come from a checkpoint): every image
        # would look alike
        vision_config=dict(**tower, image_size=IMAGE_SIZE, patch_size=8, initializer_range=0.2),
        image_text_hidden_size=DENSE_SIZE,
    )
    torch.manual_seed(seed)
    BlipForImageTextRetrieval(config).save_pretrained(folder)
    return folder


def save_tiny_d2s(folder: Path, words: list[str], seed: int = 0) -> Path:
    """The head in ``folder`` (config.json + model.safetensors), the two roles in subfolders."""
    import torch
    from transformers import DistilBertConfig, DistilBertForMaskedLM, DistilBertTokenizerFast

    save_tiny_blip(folder / "blip", words, seed)
    vocab = SPECIAL + words
    tokenizer = DistilBertTokenizerFast(vocab={word: i for i, word in enumerate(vocab)})
    tokenizer.save_pretrained(folder / "mlm_head")
    torch.manual_seed(seed + 1)
    mlm = DistilBertForMaskedLM(
        DistilBertConfig(vocab_size=len(vocab), dim=12, hidden_dim=24, n_layers=1, n_heads=2)
    ).eval()
    mlm.save_pretrained(folder / "mlm_head")
    with torch.no_grad():  # off their initial ones and zeros, so that a skipped layer norm or bias shows
        for parameter in (*mlm.vocab_layer_norm.parameters(), mlm.vocab_projector.bias):
            parameter.add_(torch.randn_like(parameter) * 0.5)
    config_class, model_class = published_d2s_classes()
    head = model_class(config_class(mlm_head="distilbert-base-uncased", dense_size=DENSE_SIZE), mlm)
    with torch.no_grad():  # a small projection, where the layer norm's eps (DistilBERT's 1e-12) shows
        head.proj.weight.mul_(0.01)
        head.proj.bias.mul_(0.01)
    head.save_pretrained(folder)
    return folder
