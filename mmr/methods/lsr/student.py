"""Small query encoders for the sparse retriever, taught to say what the teacher says.

A query through the teacher and the head can never cost less than the teacher: it runs the teacher's whole
text encoder first. SPLADE's efficiency study (Lassance and Clinchant, 2022) answers this with a query
encoder much smaller than the document one; here the documents keep the teacher's vectors and the head, and
a query goes through the first ``layers`` of the text backbone's layers (the teacher's own bottom, which it
keeps frozen),
mean-pooled and mapped by a linear layer onto the teacher's vector of the same text, learned by cosine on
the texts it will encode (every training query and image verbalisation). The head then reads the student's
vector as it reads the teacher's. It reads at most ``max_length`` tokens: a longer query is cut there.

``StaticQueryStudent`` goes further: no layers at all, a query is the normalised sum of one learned vector per
token (Model2Vec's idea, Tulkens and van Dongen, 2024: each token's vector starts as the teacher's vector of
that token alone, then all of them are tuned on the teacher's vectors of whole texts). Encoding is a
tokenisation and a table lookup, so a query costs microseconds where a transformer costs milliseconds; what it
cannot see is word order and context.

The teacher's image side verbalises an image (its top ImageNet class names) through the same text tower; an
image query lets the student encode those words, and the pixels' part stays the teacher's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmr.encoders.text_stack import TextStack, open_text_stack, saved_text_stack
from mmr.progress import ProgressBar
from mmr.training.common import minibatches

STUDENT_DIR = "query_student"
WEIGHTS_FILE, SETTINGS_FILE = "student.safetensors", "student.json"
BASE_DIR, TOKENIZER_DIR = "base", "tokenizer"
# The kinds a model's config may name (LSRConfig.query_student): none, the text backbone's first layers, a
# token table.
NO_STUDENT, LAYERS_STUDENT, STATIC_STUDENT = "none", "layers", "static"
QUERY_STUDENTS = (NO_STUDENT, LAYERS_STUDENT, STATIC_STUDENT)


class QueryStudent(nn.Module):
    """Text -> a unit vector in the teacher's space, from the first layers of the text backbone (a ``TextStack``)."""

    kind = LAYERS_STUDENT

    def __init__(self, stack: TextStack, out_dim: int, max_length: int = 64):
        super().__init__()
        self.stack = stack
        self.max_length = max_length
        hidden = stack.hidden_size
        self.project = nn.Linear(hidden, out_dim)
        with torch.no_grad():  # start as the pooled states themselves where the sizes allow
            if hidden == out_dim:
                self.project.weight.copy_(torch.eye(out_dim))
            self.project.bias.zero_()

    @classmethod
    def from_base(cls, path: str | Path, layers: int, out_dim: int, max_length: int = 64) -> QueryStudent:
        """The checkpoint at ``path`` cut to its first ``layers`` layers."""
        stack = open_text_stack(path)
        stack.keep_first_layers(layers)
        return cls(stack, out_dim, max_length)

    @property
    def tokenizer(self):
        return self.stack.tokenizer

    @property
    def layers(self) -> int:
        return self.stack.num_layers

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        texts = [text if text and text.strip() else " " for text in texts]
        encoded = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    def optimizer(self, learning_rate: float) -> torch.optim.Optimizer:
        """AdamW over everything but the word-embedding matrix, which stays the base's: it is most of the
        weights (vocabulary x hidden), updating it every step cost more than the layers, and a query's rare
        words would drift from it."""
        self.stack.model.get_input_embeddings().weight.requires_grad_(False)
        return torch.optim.AdamW([p for p in self.parameters() if p.requires_grad], lr=learning_rate, weight_decay=0.01)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.project(self.stack.encode_ids(input_ids, attention_mask)), dim=-1)

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.project.out_features), np.float32)
        was_training = self.training
        self.eval()
        parts = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenize(texts[start : start + batch_size])
            parts.append(self(batch["input_ids"], batch["attention_mask"]).numpy())
        self.train(was_training)
        return np.concatenate(parts).astype(np.float32)

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        self.stack.save_config(folder / BASE_DIR)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(folder / WEIGHTS_FILE))
        settings = {"kind": self.kind, "out_dim": self.project.out_features, "max_length": self.max_length}
        (folder / SETTINGS_FILE).write_text(json.dumps(settings))

    @classmethod
    def load(cls, folder: Path) -> QueryStudent:
        from safetensors.torch import load_file

        settings = json.loads((folder / SETTINGS_FILE).read_text())
        settings.pop("kind", None)
        # saved before the TextStack, the tokenizer sat apart from the config
        apart = folder / TOKENIZER_DIR if (folder / TOKENIZER_DIR).is_dir() else None
        student = cls(saved_text_stack(folder / BASE_DIR, apart), **settings)
        state = load_file(str(folder / WEIGHTS_FILE))
        # saved before the TextStack: the backbone's keys sat under "bert."
        state = {(f"stack.model.{k[5:]}" if k.startswith("bert.") else k): v for k, v in state.items()}
        student.load_state_dict(state)
        return student.eval()


def teach_student(
    student: QueryStudent | StaticQueryStudent,
    texts: Sequence[str],
    targets: np.ndarray,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    rng: np.random.Generator,
) -> list[float]:
    """Cosine regression of the student's vector of each text onto the teacher's (``targets``, unit rows), with
    the student's own optimiser. Returns the mean loss of each epoch."""
    targets = torch.as_tensor(np.asarray(targets, np.float32))
    optimizer = student.optimizer(learning_rate)
    student.train()
    losses = []
    for epoch in range(1, epochs + 1):
        total, batches = 0.0, list(minibatches(len(texts), batch_size, rng))
        for batch in ProgressBar(batches, desc=f"lsr query student {epoch}", unit="batch", leave=False):
            vectors = student(**student.tokenize([texts[i] for i in batch]))
            loss = (1.0 - (vectors * targets[batch]).sum(dim=1)).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
        losses.append(round(total / max(1, len(batches)), 4))
    student.eval()
    return losses


class StaticQueryStudent(nn.Module):
    """Text -> the normalised sum of its tokens' learned vectors (special tokens left out).

    The sum, not the mean: normalising makes the two point the same way, and a token's learned length is then
    its weight against the others in the text, as Model2Vec's frequency weighting is, but learned."""

    kind = STATIC_STUDENT

    def __init__(self, tokenizer, table: torch.Tensor, max_length: int = 64):
        super().__init__()
        self.tokenizer = tokenizer
        self.max_length = max_length
        # sparse gradients: a batch of short texts touches a few hundred of the 30,522 rows
        self.tokens = nn.EmbeddingBag(table.shape[0], table.shape[1], mode="sum", sparse=True)
        with torch.no_grad():
            self.tokens.weight.copy_(table)

    @classmethod
    def from_teacher(cls, tokenizer, encode_texts, max_length: int = 64, batch_size: int = 512) -> StaticQueryStudent:
        """Each token's row starts as the teacher's vector of that token alone (``encode_texts``: texts -> unit
        rows); special tokens keep zero rows, since ``tokenize`` never emits them."""
        names = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        special = set(tokenizer.all_special_ids)
        rows = [i for i in range(len(names)) if i not in special]
        words = [tokenizer.convert_tokens_to_string([names[i]]) for i in rows]
        parts = []
        for start in ProgressBar(range(0, len(rows), batch_size), desc="lsr static student: tokens", unit="batch"):
            parts.append(np.asarray(encode_texts(words[start : start + batch_size]), np.float32))
        vectors = torch.from_numpy(np.concatenate(parts))
        table = torch.zeros(len(names), vectors.shape[1])
        table[torch.as_tensor(rows)] = vectors
        return cls(tokenizer, table, max_length)

    @property
    def dim(self) -> int:
        return int(self.tokens.embedding_dim)

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        ids = self.tokenizer(list(texts), add_special_tokens=False, truncation=True, max_length=self.max_length)[
            "input_ids"
        ]
        lengths = torch.tensor([0] + [len(row) for row in ids[:-1]], dtype=torch.long)
        flat = torch.tensor([token for row in ids for token in row], dtype=torch.long)
        return {"input_ids": flat, "offsets": lengths.cumsum(0)}

    def optimizer(self, learning_rate: float) -> torch.optim.Optimizer:
        return torch.optim.SparseAdam(list(self.parameters()), lr=learning_rate)

    def forward(self, input_ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.tokens(input_ids, offsets), dim=-1)  # a text without tokens stays all zero

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], batch_size: int = 1024) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        parts = [
            self(**self.tokenize(texts[start : start + batch_size])).numpy()
            for start in range(0, len(texts), batch_size)
        ]
        return np.concatenate(parts).astype(np.float32)

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(str(folder / TOKENIZER_DIR))
        save_file({"tokens": self.tokens.weight.detach().contiguous()}, str(folder / WEIGHTS_FILE))
        (folder / SETTINGS_FILE).write_text(json.dumps({"kind": self.kind, "max_length": self.max_length}))

    @classmethod
    def load(cls, folder: Path) -> StaticQueryStudent:
        from safetensors.torch import load_file
        from transformers import AutoTokenizer

        settings = json.loads((folder / SETTINGS_FILE).read_text())
        table = load_file(str(folder / WEIGHTS_FILE))["tokens"]
        return cls(AutoTokenizer.from_pretrained(str(folder / TOKENIZER_DIR)), table, settings["max_length"]).eval()


def load_student(folder: Path) -> QueryStudent | StaticQueryStudent:
    """The student saved in ``folder``, of the kind its settings name (a student saved before there were kinds
    names none, and is a layers student)."""
    kind = json.loads((folder / SETTINGS_FILE).read_text()).get("kind", LAYERS_STUDENT)
    return {LAYERS_STUDENT: QueryStudent, STATIC_STUDENT: StaticQueryStudent}[kind].load(folder)
