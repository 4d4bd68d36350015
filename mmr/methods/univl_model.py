"""UniVL-DR's dual encoder, rebuilt from parts that run on a CPU.

The paper fine-tunes CLIP's two towers. Here the text tower is a trainable copy of the text backbone whose
lower layers stay frozen (so their outputs can be computed once and cached, see
``univl_training.text_states``), and the image tower is the frozen vision backbone's pooled
feature followed by a trainable MLP. An image document is verbalised from the image alone (its top
ImageNet class names), the words go through the same text tower, and the two embeddings are summed
and then normalised: the paper's "image embedding + caption embedding". Where the config says so,
the captions the image borrows from its look-alikes in the training data (encoders/neighbours.py,
embedded by the frozen text backbone) join the sum: the nearest this project gets to a generated caption.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmr.encoders.base import ImageFeatures, batched, in_length_order
from mmr.encoders.cache import MIN_CACHED_BATCH, cached_encoding
from mmr.encoders.neighbours import NeighbourCaptioner
from mmr.encoders.registry import STAND_INS, checkpoint_path
from mmr.encoders.text_stack import TextStack, open_text_stack

WEIGHTS, CONFIG = "model.safetensors", "config.json"
# where the backbone's weights sit in the state dict; models saved before the TextStack had them under "text.bert."
TOWER_PREFIX, LEGACY_TOWER_PREFIX = "text.stack.model.", "text.bert."
MAX_LOGIT_SCALE = 100.0  # CLIP's clamp: a larger scale makes the softmax a hard max and training unstable


@dataclass(frozen=True)
class UniVLConfig:
    text_base: str = STAND_INS.text  # a registered encoder name or a checkpoint folder
    trainable_layers: int = 2  # top transformer layers fine-tuned; the rest are frozen (CPU budget)
    image_dim: int | None = None  # the vision backbone's pooled size; None until a training run sets it
    hidden_dim: int = 768
    dropout: float = 0.1
    verbalise: bool = True
    verbal_top: int = 5  # ImageNet class names per image
    # Borrowed captions (encoders/neighbours.py): the k nearest training images' captions, added to the
    # image side at this weight; 0 neighbours leaves them out (the models trained before they existed).
    borrowed_neighbours: int = 0
    borrowed_weight: float = 0.5
    max_length: int = 128
    init_scale: float = 20.0

    def save(self, folder: Path) -> None:
        (folder / CONFIG).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, folder: Path) -> UniVLConfig:
        return cls(**json.loads((folder / CONFIG).read_text()))


def text_base_path(text_base: str) -> str:
    if Path(text_base).is_dir():
        return text_base
    return checkpoint_path(text_base)


class TextTower(nn.Module):
    """A text backbone split in two: frozen ``bottom`` layers and trainable ``top`` layers.

    ``top(bottom(x))`` equals the backbone's own forward pass; the split only exists so that training can
    cache ``bottom`` once instead of recomputing it every step.
    """

    def __init__(self, stack: TextStack, trainable_layers: int):
        super().__init__()
        self.stack = stack
        layers = stack.num_layers
        if not 0 < trainable_layers <= layers:
            raise ValueError(f"trainable_layers must be in 1..{layers}, got {trainable_layers}")
        self.split = layers - trainable_layers
        trainable = self.trainable_names()
        for name, parameter in stack.model.named_parameters():
            parameter.requires_grad = name in trainable

    def trainable_names(self) -> set[str]:
        """Names within the backbone (``stack.model``) of what training changes."""
        return {name for name, _ in self.stack.upper_parameters(self.split)}

    def bottom(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.stack.lower(self.stack.word_embeddings(input_ids), attention_mask, self.split)

    def top(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The pooled (not normalised) text embedding from bottom-layer states."""
        return self.stack.upper(hidden, attention_mask, self.split)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.top(self.bottom(input_ids, attention_mask), attention_mask)


def image_head(config: UniVLConfig, dim: int, zero_output: bool) -> nn.Sequential:
    """The MLP from a pooled image feature into the text space; ``zero_output`` starts it at exactly 0."""
    if config.image_dim is None:
        raise ValueError("UniVLConfig.image_dim is unset: take it from the vision backbone's pooled features")
    head = nn.Sequential(
        nn.LayerNorm(config.image_dim),
        nn.Linear(config.image_dim, config.hidden_dim),
        nn.GELU(),
        nn.Dropout(config.dropout),
        nn.Linear(config.hidden_dim, dim),
    )
    if zero_output:
        nn.init.zeros_(head[-1].weight)
        nn.init.zeros_(head[-1].bias)
    return head


class UniVLModel(nn.Module):
    def __init__(self, stack: TextStack, config: UniVLConfig):
        super().__init__()
        self.config = config
        self.text = TextTower(stack, config.trainable_layers)
        dim = stack.hidden_size
        self.dim = dim
        # Start as the verbalisation alone (zero-shot level) and let training add what the pixels know;
        # without words a zero projection would leave nothing to normalise.
        self.image_proj = image_head(config, dim, zero_output=config.verbalise)
        self.log_scale = nn.Parameter(torch.tensor(math.log(config.init_scale)))

    @property
    def scale(self) -> torch.Tensor:
        return self.log_scale.clamp(max=math.log(MAX_LOGIT_SCALE)).exp()

    def text_embedding(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text.top(hidden, attention_mask), dim=-1)

    def image_embedding(
        self, pooled: torch.Tensor, verbal: torch.Tensor | None, borrowed: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Projected image plus its verbalisation's (normalised) text embedding, plus its borrowed
        captions' vector at ``borrowed_weight``, summed, then normalised.

        The verbal part is unit length so that the projection's learned norm sets how much the pixels
        count against the words.
        """
        image = self.image_proj(pooled)
        if verbal is not None:
            image = image + verbal
        if self.config.borrowed_neighbours:
            if borrowed is None:
                raise ValueError("this model adds borrowed captions to images: pass their vectors")
            image = image + self.config.borrowed_weight * borrowed
        return F.normalize(image, dim=-1)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Only what training changes: the frozen layers are the base checkpoint's, loaded from it."""
        keep = {f"{TOWER_PREFIX}{name}" for name in self.text.trainable_names()}
        return {
            k: v.detach().contiguous().clone()
            for k, v in self.state_dict().items()
            if k in keep or not k.startswith("text.")
        }


def build_model(config: UniVLConfig) -> tuple[UniVLModel, object]:
    stack = open_text_stack(text_base_path(config.text_base))
    return UniVLModel(stack, config), stack.tokenizer


def save_model(model: UniVLModel, folder: Path) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file(model.trainable_state(), str(folder / WEIGHTS))
    model.config.save(folder)


def text_side_tag(model: UniVLModel) -> str:
    """What a text's vector depends on: the backbone, the length cut and the text tower's trainable weights (the
    frozen rest is the backbone's). Models that share it embed every text alike: UniVL-DR's hard-negative stage
    keeps the in-batch model's tower, and a checkpoint from the head stage keeps the backbone's own."""
    digest = hashlib.sha256(f"{model.config.text_base}|{model.config.max_length}".encode())
    weights = dict(model.text.stack.model.named_parameters())
    for name in sorted(model.text.trainable_names()):
        digest.update(name.encode())
        digest.update(weights[name].detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def load_model(folder: Path) -> tuple[UniVLModel, object]:
    from safetensors.torch import load_file

    model, tokenizer = build_model(UniVLConfig.load(folder))
    state = {
        (TOWER_PREFIX + key[len(LEGACY_TOWER_PREFIX) :] if key.startswith(LEGACY_TOWER_PREFIX) else key): value
        for key, value in load_file(str(folder / WEIGHTS)).items()
    }
    result = model.load_state_dict(state, strict=False)
    if result.unexpected_keys or set(result.missing_keys) & set(model.trainable_state()):
        raise ValueError(f"{folder / WEIGHTS} does not match its config: {result}")
    return model.eval(), tokenizer


class UniVLEncoder:
    """The ``DualEncoderModel`` the trained-retriever base indexes with (inference only)."""

    needs_grid = False

    def __init__(
        self,
        model: UniVLModel,
        tokenizer,
        words: Callable[[np.ndarray, int], list[str]],
        device: str = "cpu",
        batch_size: int = 64,
        captioner: NeighbourCaptioner | None = None,
        text_cache: Path | None = None,
    ):
        """``text_cache``: a folder named by ``text_side_tag``, where large batches of texts are kept once embedded
        (the mixed collection's 5,000 glosses are embedded for dev and for each index of every model that shares
        the tower); None embeds every time."""
        if model.config.borrowed_neighbours and captioner is None:
            raise ValueError("this model adds borrowed captions to images: it needs its caption pool")
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.words = words
        self.captioner = captioner
        self.device = device
        self.batch_size = batch_size
        self.dim = model.dim
        self.text_cache = text_cache

    @torch.inference_mode()
    def _text_vectors(self, texts: Sequence[str], normalise: bool = True) -> torch.Tensor:
        parts = []
        progress = "text tower" if len(texts) >= 4 * MIN_CACHED_BATCH else False
        for chunk in batched([t if t and t.strip() else " " for t in texts], self.batch_size, progress):
            batch = self.tokenizer(
                list(chunk), padding=True, truncation=True, max_length=self.model.config.max_length, return_tensors="pt"
            ).to(self.device)
            parts.append(self.model.text(batch["input_ids"], batch["attention_mask"]))
        vectors = torch.cat(parts) if parts else torch.zeros((0, self.dim), device=self.device)
        return F.normalize(vectors, dim=-1) if normalise else vectors

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        def encode(batch: list[str]) -> np.ndarray:
            return in_length_order(batch, lambda ordered: self._text_vectors(ordered).float().cpu().numpy())

        return encode(list(texts)) if self.text_cache is None else cached_encoding(self.text_cache, list(texts), encode)

    def verbalisations(self, features: ImageFeatures) -> list[str]:
        """The words each image is verbalised as (its top ImageNet class names); empty if it is not."""
        if not self.model.config.verbalise:
            return []
        return self.words(features.logits, self.model.config.verbal_top)

    @torch.inference_mode()
    def encode_images(
        self, features: ImageFeatures, encode_words: Callable[[list[str]], np.ndarray] | None = None
    ) -> np.ndarray:
        """Image vectors; ``encode_words`` (texts -> unit vectors) may stand in for the text tower on the
        verbalisation, as the sparse retriever's query student does."""
        if len(features.pooled) == 0:
            return np.zeros((0, self.dim), np.float32)
        verbal = None
        if self.model.config.verbalise:
            words = self.verbalisations(features)
            verbal = (
                self._text_vectors(words)
                if encode_words is None
                else torch.as_tensor(encode_words(words), device=self.device)
            )
        borrowed = None
        if self.model.config.borrowed_neighbours:
            borrowed = torch.as_tensor(self.captioner.embed(features.pooled), device=self.device)
        pooled = torch.as_tensor(np.asarray(features.pooled, np.float32), device=self.device)
        return self.model.image_embedding(pooled, verbal, borrowed).float().cpu().numpy()
