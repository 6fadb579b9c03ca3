"""Inference routines (installed as ``ppgen.inference``): objectives and drivers.

Objectives are loss objects the shared training engine runs (:class:`ppgen.objective.Objective`);
every likelihood or bound they need comes from the evaluation layer (:mod:`ppgen.evaluate`).
"""

from __future__ import annotations

from ppgen.inference.aae import AAE_OBJECTIVES, AdversarialAutoencoding
from ppgen.inference.adversarial import Adversarial, AdversarialLoss, mlp_critic
from ppgen.inference.ali import ALI
from ppgen.inference.avb import AVB, avb_critic
from ppgen.inference.contrastive import CONTRASTIVE_OBJECTIVES, ContrastiveDivergence
from ppgen.inference.diffusion import DiffusionHybrid, DiffusionSimple
from ppgen.inference.likelihood import MaximumLikelihood
from ppgen.inference.program_model import ProgramModel
from ppgen.inference.program_pair import ProgramPair
from ppgen.inference.registry import OBJECTIVES, make_objective
from ppgen.inference.score_matching import SCORE_MATCHING_OBJECTIVES, DenoisingScoreMatching
from ppgen.inference.translation import TRANSLATION_OBJECTIVES
from ppgen.inference.variational import ELBO, IWAE
from ppgen.inference.warmup import WARMUP_OBJECTIVES, WarmupELBO

OBJECTIVES.update(CONTRASTIVE_OBJECTIVES)  # the table of inference/registry.py, one more module
OBJECTIVES.update(SCORE_MATCHING_OBJECTIVES)
OBJECTIVES.update(TRANSLATION_OBJECTIVES)
OBJECTIVES.update(AAE_OBJECTIVES)
OBJECTIVES.update(WARMUP_OBJECTIVES)

__all__ = ["MaximumLikelihood", "ELBO", "IWAE", "OBJECTIVES", "make_objective", "Adversarial",
           "AdversarialLoss", "mlp_critic", "ProgramModel",
           "ALI", "AVB", "avb_critic", "ProgramPair",
           "DiffusionSimple", "DiffusionHybrid", "ContrastiveDivergence", "DenoisingScoreMatching",
           "AdversarialAutoencoding", "WarmupELBO"]
