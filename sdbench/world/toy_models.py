"""Builders for the toy prior's components, in the diffusers folder layout of Stable Diffusion.

The toy prior is a pixel-space text-to-image diffusion model: a small ``UNet2DConditionModel``,
a tiny ``CLIPTextModel`` over a word-level tokenizer of the toy vocabulary, and a 1000-step DDPM
schedule with Stable Diffusion's ``scaled_linear`` betas (so a timestep ``t`` means the same noise
level as in SD 2.1, and t-dependent rules such as DCA's cut-off at 300 carry over).
No VAE: rendered RGB in [0, 1] maps to the prior's space as ``2x - 1``.

World v2 (``world="v2"``) uses the v2 vocabulary (v1's words keep their token ids, new words are
appended) and :data:`UNET_CONFIG_V2`, v1's architecture, so a warm start from v1 copies every UNet
tensor; :data:`UNET_CONFIG_V2_LARGE` (two layers per block, cross-attention at 16×16 as well) is the
``--unet large`` option, grown from v1 function-preservingly (:func:`sdbench.world.training.warm_start_unet`).
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

#: World v2's default UNet: v1's architecture (2.45 M parameters). The prior is most of every toy trial's
#: step (``benchmarks/results/step_profile.json``), so its size sets what a study costs; the large
#: variant below costs twice as much per image (``benchmarks/results/prior_cost.json``).
UNET_CONFIG_V2 = dict(UNET_CONFIG)

#: The large v2 UNet (``--unet large``): two layers per block and cross-attention at 16×16 as well as
#: 8×8 (4.03 M parameters), grown from v1 function-preservingly (:func:`sdbench.world.training.warm_start_unet`).
UNET_CONFIG_V2_LARGE = dict(
    UNET_CONFIG,
    layers_per_block=2,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
)

#: ``--unet`` choices of ``train_prior``.
UNET_SIZES = ("base", "large")

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


def build_unet(world: World = "v1", resolution: int = RESOLUTION, size: str = "base"):
    """The prior's UNet for ``world`` at ``resolution``: :data:`UNET_CONFIG` (v1), :data:`UNET_CONFIG_V2`
    (v2, ``size="base"``) or :data:`UNET_CONFIG_V2_LARGE` (v2, ``size="large"``)."""
    from diffusers import UNet2DConditionModel

    if size not in UNET_SIZES or (world == "v1" and size != "base"):
        raise ValueError(f"no {size!r} UNet for world {world}")
    config = UNET_CONFIG if world == "v1" else UNET_CONFIG_V2 if size == "base" else UNET_CONFIG_V2_LARGE
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
