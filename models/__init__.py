"""The model zoo (installed as ``ppgen.models``): one family per module."""

from __future__ import annotations

from ppgen.models.aae import AAE
from ppgen.models.autoregressive import FVSBN, AutoregressiveModel
from ppgen.models.bigan import BiGAN
from ppgen.models.conditional_gan import ACGAN, CGAN
from ppgen.models.cvae import CVAE, StructuredCVAE
from ppgen.models.cyclegan import CycleGAN
from ppgen.models.dequantization import Dequantized
from ppgen.models.diffusion import DDPM, ImprovedDDPM
from ppgen.models.discrete import (
    FullJoint,
    IndependentBernoulli,
    IndependentCategorical,
    MarkovChain,
)
from ppgen.models.ebm import EBM
from ppgen.models.flows import MAF, NSF, FlowModel, RealNVP
from ppgen.models.gan import DCGAN, GAN
from ppgen.models.glow import Glow
from ppgen.models.infogan import InfoGAN
from ppgen.models.ladder_vae import LadderVAE
from ppgen.models.made import MADE
from ppgen.models.nade import NADE, RNADE
from ppgen.models.pixelcnn import PixelCNN
from ppgen.models.pixelrnn import PixelRNN
from ppgen.models.ppca import PPCA
from ppgen.models.progressive_gan import ProgressiveGAN
from ppgen.models.stargan import StarGAN
from ppgen.models.vae import VAE
from ppgen.models.vdm import VDM

__all__ = [
    "IndependentBernoulli",
    "IndependentCategorical",
    "FullJoint",
    "MarkovChain",
    "VAE",
    "AAE",
    "LadderVAE",
    "CVAE",
    "StructuredCVAE",
    "PPCA",
    "AutoregressiveModel",
    "FVSBN",
    "NADE",
    "RNADE",
    "MADE",
    "PixelCNN",
    "PixelRNN",
    "FlowModel", "RealNVP", "MAF", "NSF", "Glow", "Dequantized",
    "GAN", "DCGAN",
    "BiGAN",
    "ProgressiveGAN",
    "CGAN", "ACGAN", "InfoGAN",
    "CycleGAN", "StarGAN",
    "DDPM", "ImprovedDDPM",
    "VDM",
    "EBM",
]
