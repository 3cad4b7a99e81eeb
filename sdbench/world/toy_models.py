"""Builders for the toy prior's components, in the diffusers folder layout of Stable Diffusion.

The toy prior is a pixel-space text-to-image diffusion model: a small ``UNet2DConditionModel``,
a tiny ``CLIPTextModel`` over a word-level tokenizer of the toy vocabulary, and a 1000-step DDPM
schedule with Stable Diffusion's ``scaled_linear`` betas (so a timestep ``t`` means the same noise
level as in SD 2.1, and t-dependent rules such as DCA's cut-off at 300 carry over).
No VAE: rendered RGB in [0, 1] maps to the prior's space as ``2x - 1``.

World v2 (``world="v2"``) uses the v2 vocabulary (v1's words keep their token ids, new words are
appended) and :data:`UNET_CONFIG_V2`: v1's widths, two layers per block and cross-attention at
16×16 as well as 8×8, for patterns and a front marking placed by the text. Every v1 tensor whose
name and shape recur in v2 can be copied into it (:func:`sdbench.world.training.warm_start`).
"""

from __future__ import annotations

import json
from pathlib import Path

from sdbench.world.grammar import World, token_vocabulary

RESOLUTION = 32
MAX_TOKENS = 16
TEXT_WIDTH = 64
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")

UNET_CONFIG = dict(
    sample_size=RESOLUTION,
    in_channels=3,
    out_channels=3,
    block_out_channels=(32, 64, 96),
    layers_per_block=1,
    down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    cross_attention_dim=TEXT_WIDTH,
    attention_head_dim=8,
    norm_num_groups=16,
)

UNET_CONFIG_V2 = dict(
    UNET_CONFIG,
    layers_per_block=2,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
)

SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    prediction_type="epsilon",
    clip_sample=False,
    steps_offset=1,
)


def build_tokenizer(world: World = "v1"):
    """A word-level fast tokenizer of ``world``'s vocabulary: lower-cases, keeps letters only, maps
    unknown words to ``<unk>``."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + tuple(token_vocabulary(world)))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.Lowercase(), normalizers.Replace(Regex("[^a-z]+"), " ")])
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", vocab["<bos>"]), ("<eos>", vocab["<eos>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        pad_token="<pad>",
        model_max_length=MAX_TOKENS,
    )


def build_text_encoder(vocab_size: int):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=TEXT_WIDTH,
        intermediate_size=4 * TEXT_WIDTH,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=MAX_TOKENS,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    return CLIPTextModel(config)


def build_unet(world: World = "v1", resolution: int = RESOLUTION):
    """The prior's UNet for ``world`` (:data:`UNET_CONFIG` or :data:`UNET_CONFIG_V2`) at ``resolution``."""
    from diffusers import UNet2DConditionModel

    config = UNET_CONFIG if world == "v1" else UNET_CONFIG_V2
    return UNet2DConditionModel(**{**config, "sample_size": resolution})


def build_scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(**SCHEDULER_CONFIG)


def save_pipeline_folder(root: Path, unet, text_encoder, tokenizer, scheduler) -> None:
    """Write the four components and ``model_index.json`` (the layout diffusers pipelines use)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    unet.save_pretrained(root / "unet", safe_serialization=True)
    text_encoder.save_pretrained(root / "text_encoder", safe_serialization=True)
    tokenizer.save_pretrained(root / "tokenizer")
    scheduler.save_pretrained(root / "scheduler")
    index = {
        "_class_name": "ToyPixelDiffusion",
        "_diffusers_version": __import__("diffusers").__version__,
        "scheduler": ["diffusers", type(scheduler).__name__],
        "text_encoder": ["transformers", type(text_encoder).__name__],
        "tokenizer": ["transformers", "PreTrainedTokenizerFast"],
        "unet": ["diffusers", type(unet).__name__],
        "vae": [None, None],
    }
    (root / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
