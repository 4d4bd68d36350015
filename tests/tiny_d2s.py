"""A tiny Dense2Sparse checkpoint a test creates, in the published layout (no model hub here): the head as
thongnt99/lsr-multimodal's ``D2SModel.save_pretrained`` writes it, beside a ``blip`` role (a tiny
``BlipForImageTextRetrieval`` with its BERT tokenizer and image processor) and an ``mlm_head`` role (a tiny
DistilBERT MLM with its WordPiece tokenizer)."""

from __future__ import annotations

from pathlib import Path

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
DENSE_SIZE = 8  # BLIP's projection here; 256 in the published model
IMAGE_SIZE = 32
# BlipImageProcessor's normalisation (OpenAI CLIP's mean and std), written out for the reference below
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
BLIP_TEXT_MAX_LENGTH = 35  # BLIP's retrieval evaluation


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
    model = BlipForImageTextRetrieval(config)
    # the final layer norm off its initial ones and zeros, so that transformers' pooler_output (that layer norm
    # applied twice) differs from the class token BLIP's retrieval reads
    with torch.no_grad():
        for parameter in model.vision_model.post_layernorm.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.5)
    model.save_pretrained(folder)
    return folder


def reference_pixels(image):
    """BLIP's test transform on an RGB image: a bicubic resize to the square size, scaled to [0, 1], CLIP's mean
    and std."""
    import numpy as np
    import torch
    from PIL import Image

    square = np.asarray(image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BICUBIC), dtype=np.float64) / 255
    normalised = (square - np.array(CLIP_MEAN)) / np.array(CLIP_STD)
    return torch.tensor(normalised.transpose(2, 0, 1), dtype=torch.float32)


def reference_blip_vectors(folder: Path, texts: list[str], images: list) -> tuple:
    """BLIP's retrieval vectors written out from its submodules, what the code under test must equal: the text
    encoder's [CLS] state through text_proj (texts cut at 35 tokens), the vision model's class token through
    vision_proj, each L2-normalised. Texts in one padded batch, images (RGB) in another."""
    import torch
    import torch.nn.functional as F
    from transformers import BertTokenizerFast, BlipForImageTextRetrieval

    blip = BlipForImageTextRetrieval.from_pretrained(str(folder)).eval()
    tokenizer = BertTokenizerFast.from_pretrained(str(folder))
    with torch.no_grad():
        batch = tokenizer(texts, padding=True, truncation=True, max_length=BLIP_TEXT_MAX_LENGTH, return_tensors="pt")
        cls = blip.text_encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        text_dense = F.normalize(blip.text_proj(cls[:, 0]), dim=-1)
        pixels = torch.stack([reference_pixels(image) for image in images])
        image_dense = F.normalize(blip.vision_proj(blip.vision_model(pixel_values=pixels).last_hidden_state[:, 0]))
    return text_dense, image_dense


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
