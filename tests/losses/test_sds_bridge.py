"""SDS-Bridge: both stages against the closed-form prior, and the source/target prompts it builds."""

from __future__ import annotations

import pytest
import torch

from sdbench.errors import UserError
from sdbench.losses.sds_bridge import PAPER_SOURCE, TOY_SOURCE, SDSBridge
from sdbench.priors.base import TextConditioning
from sdbench.priors.toy import ToyPrior
from sdbench.testing import StubPrior
from tests.losses.helpers import PROMPT, check, eps, forward_process, setup


class ToyVocabularyStub(StubPrior):
    """The stub prior with the toy prior's prompt check (its vocabulary), without its weights."""

    check_prompt = ToyPrior.check_prompt


def views(cams) -> list[str]:
    return [f"{v} view" for v in cams.view_names()]


def test_stage_one_is_sds_on_the_target_prompt():
    prior, images, noise, cams, text = setup()
    t, s, lam1 = torch.tensor([30, 400, 900]), 7.5, 0.5
    loss = SDSBridge(SDSBridge.Config(cfg_scale=s, stage_one_weight=lam1, stage_two_start=10), prior)
    out = loss(images, text, cams, 9, t=t, noise=noise)
    out.loss.backward()
    _, x_t, a = forward_process(prior, images, t, noise)
    e_tgt = eps(x_t, t, [f"{PROMPT}, ., {v}" for v in views(cams)])  # the official 3D target "p, ., {view} view"
    e_u = eps(x_t, t, "")
    check(images, lam1 * (1 - a) * (e_u + s * (e_tgt - e_u) - noise))
    assert prior.nfe.forward == 2 * 3 and out.logs["stage"] == 1.0


@pytest.mark.parametrize("weighting", ["uniform", "sds"])
def test_stage_two_is_the_difference_of_target_and_source_predictions(weighting):
    prior, images, noise, cams, text = setup()
    t, lam2 = torch.tensor([30, 400, 900]), 40.0
    cfg = SDSBridge.Config(stage_two_weight=lam2, stage_two_weighting=weighting, stage_two_start=10, tgt_modifier="")
    out = SDSBridge(cfg, prior)(images, text, cams, 10, t=t, noise=noise)
    out.loss.backward()
    _, x_t, a = forward_process(prior, images, t, noise)
    e_tgt = eps(x_t, t, [f"{PROMPT}, {v}" for v in views(cams)])  # "" → the bare prompt
    e_src = eps(x_t, t, [f"{PROMPT}, {PAPER_SOURCE}, {v}" for v in views(cams)])  # the stub accepts any word
    w = (1 - a) if weighting == "sds" else torch.ones_like(a)
    check(images, lam2 * w * (e_tgt - e_src))
    assert prior.nfe.forward == 2 * 3 and out.logs["stage"] == 2.0


def test_the_toy_vocabulary_replaces_the_papers_source_prompt():
    prior = ToyVocabularyStub()
    text = TextConditioning(prior, PROMPT)
    loss = SDSBridge(SDSBridge.Config(), prior)
    source, target = loss.texts(text)
    assert source.prompt == f"{PROMPT}, {TOY_SOURCE}" and target.prompt == f"{PROMPT}, ."
    ToyPrior.check_prompt(source.prompts_for(setup()[3])[0])  # every word is the toy world's
    assert SDSBridge(SDSBridge.Config(), StubPrior()).modifiers(PROMPT)[0] == PAPER_SOURCE
    assert SDSBridge(SDSBridge.Config(src_modifier="blurry"), prior).modifiers(PROMPT) == ("blurry", ".")
    for bad in (SDSBridge.Config(src_modifier=PAPER_SOURCE), SDSBridge.Config(tgt_modifier="sharp, high quality")):
        with pytest.raises(UserError, match="modifier"):
            SDSBridge(bad, prior).modifiers(PROMPT)
