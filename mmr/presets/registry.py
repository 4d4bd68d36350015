"""The published checkpoints, one entry each: what method, where its files come from, the folder variable that
names them here, the base models it builds on, and the preprocessing its code fixes. What each repository's
code does is in ../shared/PUBLISHED_MODELS.md; the readers follow it and the tests check them against it."""

from __future__ import annotations

from mmr.presets.base import PresetSpec

CLIP_B32 = "openai/clip-vit-base-patch32"
_MARVEL_BASES = {"text": "OpenMatch/t5-ance", "vision": CLIP_B32}
# MARVEL's code (gen_embeddings.py): queries and text documents cut at 128 tokens; a captioned image at 128 plus
# its patch tokens and two markers (179 for ViT-B/32), which the reader derives from the vision tower. The code
# centre-crops images, and so do the presets: they reproduce the published vectors (pad_to_square=True pads on
# white first, as this project's CLIP does, for drawings whose edges a crop would cut).
_MARVEL_OPTIONS = {"text_max_length": 128, "caption_prefix": " caption: ", "pad_to_square": False}
_UNIVL_OPTIONS = {"max_length": 77}  # CLIP's context, truncated as UniVL-DR's encode_text does


def _univl(name: str, label: str, family: str, variable: str, archive: str) -> PresetSpec:
    """UniVL-DR's repository publishes two checkpoints of one model: OpenAI-layout CLIP weights."""
    source = f"UniVL-DR's {archive} (OpenMatch/UniVL-DR README), unzipped"
    reader = "mmr.presets.openai_clip:read_clip_checkpoint"
    return PresetSpec(
        name, label, family, reader, variable, source, "model.best.pt", {"clip": CLIP_B32}, _UNIVL_OPTIONS
    )


def _marvel(name: str, label: str, family: str, variable: str, source: str, reader: str) -> PresetSpec:
    """MARVEL's checkpoints and CIEA's (a MARVEL fork): T5-ANCE + CLIP's vision tower in one model.best.pt."""
    return PresetSpec(name, label, family, reader, variable, source, "model.best.pt", _MARVEL_BASES, _MARVEL_OPTIONS)


_MARVEL_READER, _CIEA_READER = "mmr.presets.marvel:read_marvel_checkpoint", "mmr.presets.marvel:read_ciea_checkpoint"

PRESETS: dict[str, PresetSpec] = {
    spec.name: spec
    for spec in (
        _univl(
            "univl-dr-webqa", "UniVL-DR (published, WebQA)", "UniVL-DR", "MMR_UNIVL_DR_PATH", "checkpoint_multi_hn.zip"
        ),
        _univl(
            "clip-dpr-webqa", "CLIP-DPR (published, WebQA)", "CLIP-DPR", "MMR_CLIP_DPR_PATH", "checkpoint_multi_inb.zip"
        ),
        _marvel(
            "marvel-ance-webqa",
            "MARVEL-ANCE (published, WebQA)",
            "MARVEL",
            "MMR_MARVEL_ANCE_PATH",
            "the hub repository OpenMatch/marvel-ance-webqa",
            _MARVEL_READER,
        ),
        _marvel(
            "marvel-dpr-webqa",
            "MARVEL-DPR (published, WebQA)",
            "MARVEL",
            "MMR_MARVEL_DPR_PATH",
            "the hub repository OpenMatch/marvel-dpr-webqa",
            _MARVEL_READER,
        ),
        _marvel(
            "ciea-webqa",
            "CIEA (a MARVEL checkpoint with its extractor)",
            "CIEA",
            "MMR_CIEA_PATH",
            "a model.best.pt trained with sysu18364004/CIEA's code (none is published)",
            _CIEA_READER,
        ),
        PresetSpec(
            "d2s-mscoco-blip",
            "Dense2Sparse (published, MSCOCO, BLIP)",
            "Dense2Sparse LSR",
            reader="mmr.presets.d2s:read_d2s_checkpoint",
            variable="MMR_D2S_PATH",
            source="the hub repository lsr42/d2s_mscoco-blip-dense_q_reg_0.001_d_reg_0.001 (save_pretrained files)",
            checkpoint="config.json",
            bases={"blip": "Salesforce/blip-itm-base-coco", "mlm_head": "distilbert-base-uncased"},
            # BLIP's retrieval evaluation: texts cut at 35 tokens, images resized to a square (no crop, no padding)
            options={"text_max_length": 35, "pad_images": False},
        ),
    )
}
