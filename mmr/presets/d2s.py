"""Dense2Sparse (thongnt99/lsr-multimodal): a published sparse head over BLIP's image-text vectors.

The published checkpoint is ``D2SModel.save_pretrained``'s folder: ``config.json`` (``model_type`` "d2s",
``mlm_head``, ``dense_size``) and ``model.safetensors`` or ``pytorch_model.bin`` with three modules, one head
for queries and documents, texts and images alike:

    weights = log1p(relu(vocab_projector(vocab_layer_norm(proj(v)))))

``proj`` maps the dense vector to DistilBERT's width; ``vocab_layer_norm`` and ``vocab_projector`` are
DistilBERT's MLM head without its ``vocab_transform``; a weight per WordPiece term of ``distilbert-base-uncased``
(the ``mlm_head`` role's tokenizer). Scores are dot products. The paper evaluates with every term the head
gives (train.py's test pass, no top-k or threshold), which this reader follows; its retrieve.py also has a
"no_exp" mode that keeps only a query's own tokens, not done here.

Their ``D2SModel.__init__`` downloads ``mlm_head`` by name, so their class is not used: the three modules are
rebuilt here with the sizes the weights have, and the keys are loaded strictly.

Dense inputs. The paper trained on precomputed 256-d BLIP vectors (the ``lsr42/mscoco-blip-dense`` data set).
Here they are computed by the ``blip-text`` / ``blip-image`` encoders (``mmr/encoders/blip.py``) opened on the
``blip`` role, as BLIP's own retrieval evaluation does: the text encoder's [CLS] state through ``text_proj``
(texts cut at 35 tokens), the image's class token through ``vision_proj``, each L2-normalised; images resized
to a square without a crop or padding (BLIP's test transform). Whether these match the published precomputed
vectors is unverified.
A text (query or document) takes the text side, an image (document or query) the image side; Dense2Sparse
documents are images alone, so a caption is not read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from PIL import Image
from torch import nn

from mmr.encoders.base import Encoder
from mmr.encoders.blip import TEXT_MAX_LENGTH, BLIPImageEncoder, BLIPTextEncoder
from mmr.encoders.clip import checkpoint_tag
from mmr.presets.base import PresetFilesError, PresetModel, PresetSpec

MODEL_TYPE = "d2s"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # what save_pretrained writes, newer and older
HEAD_KEYS = tuple(
    f"{module}.{part}" for module in ("proj", "vocab_layer_norm", "vocab_projector") for part in ("weight", "bias")
)
DEFAULT_DENSE_SIZE = 256  # D2SConfig's default, where a config.json leaves it out
LAYER_NORM_EPS = 1e-12  # DistilBERT's vocab_layer_norm
BATCH = 32


class D2SLayoutError(ValueError):
    """The folder's config or weights are not a Dense2Sparse checkpoint as save_pretrained writes it."""


class DenseToSparseHead(nn.Module):
    """The published head, with the published module names so that its state dict loads as saved."""

    def __init__(self, dense_size: int, hidden_size: int, vocabulary_size: int):
        super().__init__()
        self.proj = nn.Linear(dense_size, hidden_size)
        self.vocab_layer_norm = nn.LayerNorm(hidden_size, eps=LAYER_NORM_EPS)
        self.vocab_projector = nn.Linear(hidden_size, vocabulary_size)

    def forward(self, dense: torch.Tensor) -> torch.Tensor:
        return torch.log1p(torch.relu(self.vocab_projector(self.vocab_layer_norm(self.proj(dense)))))


def read_head_config(folder: Path) -> dict:
    config = json.loads((folder / "config.json").read_text())
    if config.get("model_type") != MODEL_TYPE:
        raise D2SLayoutError(
            f"{folder / 'config.json'} has model_type {config.get('model_type')!r}, not {MODEL_TYPE!r}: "
            "not a Dense2Sparse checkpoint"
        )
    return config


def read_head_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The state dict save_pretrained wrote, checked against the published keys."""
    present = [folder / name for name in WEIGHT_FILES if (folder / name).is_file()]
    if not present:
        raise PresetFilesError(f"{folder} has neither of {', '.join(WEIGHT_FILES)} (D2SModel.save_pretrained's)")
    if present[0].suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(present[0]), device="cpu")
    else:
        state = torch.load(present[0], map_location="cpu", weights_only=True)
    missing, unexpected = sorted(set(HEAD_KEYS) - state.keys()), sorted(state.keys() - set(HEAD_KEYS))
    if missing or unexpected:
        raise D2SLayoutError(
            f"{present[0]} is not a Dense2Sparse head: missing keys {missing}, unexpected keys {unexpected} "
            f"(expected exactly {list(HEAD_KEYS)})"
        )
    return state


def load_head(folder: Path, config: dict) -> DenseToSparseHead:
    state = read_head_weights(folder)
    hidden_size, dense_size = state["proj.weight"].shape
    expected = int(config.get("dense_size", DEFAULT_DENSE_SIZE))
    if dense_size != expected:
        raise D2SLayoutError(f"proj.weight takes {dense_size}-d vectors, config.json's dense_size is {expected}")
    head = DenseToSparseHead(dense_size, hidden_size, state["vocab_projector.weight"].shape[0])
    head.load_state_dict(state, strict=True)
    return head.eval()


class D2SModel(PresetModel):
    sparse = True

    def __init__(
        self,
        name: str,
        head: DenseToSparseHead,
        text_tower: BLIPTextEncoder,
        image_tower: BLIPImageEncoder,
        tokenizer,
        tag: str,
    ):
        self.name, self.head, self.text_tower, self.image_tower = name, head, text_tower, image_tower
        self.tokenizer, self._tag = tokenizer, tag
        self.dim = head.vocab_projector.out_features

    @torch.inference_mode()
    def _sparse(self, items: Sequence, tower: Encoder) -> sp.csr_matrix:
        device = self.head.proj.weight.device
        rows = []
        for start in range(0, len(items), BATCH):
            dense = torch.from_numpy(tower.encode(items[start : start + BATCH], batch_size=BATCH)).to(device)
            rows.append(sp.csr_matrix(self.head(dense).cpu().numpy()))
        return sp.vstack(rows, format="csr") if rows else sp.csr_matrix((0, self.dim), dtype=np.float32)

    def encode_queries(self, texts: Sequence[str]) -> sp.csr_matrix:
        return self._sparse(list(texts), self.text_tower)

    def encode_text_documents(self, texts: Sequence[str]) -> sp.csr_matrix:
        return self._sparse(list(texts), self.text_tower)

    def encode_image_documents(self, images: Sequence[Image.Image], captions: Sequence[str]) -> sp.csr_matrix:
        return self._sparse(list(images), self.image_tower)  # the paper's image documents have no text

    def encode_image_queries(self, images: Sequence[Image.Image]) -> sp.csr_matrix:
        return self._sparse(list(images), self.image_tower)

    def vocabulary(self):
        from mmr.methods.lsr.head import Vocabulary

        return Vocabulary(self.tokenizer)

    def tag(self) -> str:
        return self._tag


def read_d2s_checkpoint(spec: PresetSpec, folder: Path, device: str) -> D2SModel:
    from transformers import AutoTokenizer

    config = read_head_config(folder)
    head = load_head(folder, config).to(device)
    blip = spec.base(folder, "blip")
    # the two towers share one loaded BlipForImageTextRetrieval (encoders/blip.py loads a folder once per device)
    max_length = int(spec.options.get("text_max_length", TEXT_MAX_LENGTH))
    text_tower = BLIPTextEncoder("blip-text", blip, max_length=max_length, device=device)
    image_tower = BLIPImageEncoder("blip-image", blip, pad_images=bool(spec.options.get("pad_images")), device=device)
    if text_tower.dim != head.proj.in_features:
        raise D2SLayoutError(f"BLIP gives {text_tower.dim}-d vectors, the head takes {head.proj.in_features}-d ones")
    tokenizer = AutoTokenizer.from_pretrained(spec.base(folder, "mlm_head"))
    if len(tokenizer) != head.vocab_projector.out_features:
        raise D2SLayoutError(
            f"the mlm_head tokenizer has {len(tokenizer)} terms, the head scores {head.vocab_projector.out_features}"
        )
    tag = f"{spec.name}-{checkpoint_tag(folder)}" + (f"-{checkpoint_tag(blip)}" if Path(blip).is_dir() else "")
    return D2SModel(spec.name, head, text_tower, image_tower, tokenizer, tag)
