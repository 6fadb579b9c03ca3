"""Energy-based models: an MLP energy relative to a Gaussian base, trained by contrastive
divergence, sampled by Langevin chains, scored by annealed importance sampling.

The unnormalised density is ``p̃(x) = q_0(x) exp(-g_θ(x))``: ``q_0`` the Gaussian base fitted to
the data (:class:`~ppgen.energy.GaussianBase`, stored on the model), ``g_θ`` a network, so the
energy is ``E(x) = g_θ(x) - log q_0(x)`` and ``Z = E_{q_0}[exp(-g_θ)]``. The base term makes
``Z`` finite (``g_θ`` with Lipschitz activations grows at most linearly, the base's quadratic
wins), sets the scale for the samplers (they run in the base's whitened coordinates), and
``g_θ = 0`` is the base itself (the energy-magnitude regulariser pulls towards it).

* :class:`EBM` — an MLP ``g_θ`` for flat data and 2-D toys (Du & Mordatch 2019, "Implicit
  Generation and Modeling with Energy-Based Models", arXiv:1903.08689; the persistent chains of
  Tieleman 2008).

Training: ``ppgen.fit`` with the default objective ``"contrastive-divergence"``
(:class:`ppgen.inference.ContrastiveDivergence`: persistent chains in a replay buffer, short-run
Langevin). Likelihood: ``ppgen.log_likelihood(ebm, x)`` routes to AIS; ``nll_report`` adds the
reverse-AIS bracket (:mod:`ppgen.energy.estimate`).

Example:
    >>> ebm = EBM(2, hidden_dims=(16,))
    >>> ebm.energy(torch.zeros(3, 2)).shape
    torch.Size([3])
    >>> ebm.sample(4, steps=5).shape
    torch.Size([4, 2])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as spectral

from ppgen.energy import EnergyModel
from ppgen.errors import ModelError

if TYPE_CHECKING:
    from ppgen.data import DataInfo

__all__ = ["EBM", "ENERGY_ACTIVATIONS"]

#: smooth activations for the energy network (Langevin chains follow its gradient)
ENERGY_ACTIVATIONS: dict[str, type[nn.Module]] = {"silu": nn.SiLU, "softplus": nn.Softplus,
                                                  "elu": nn.ELU, "tanh": nn.Tanh}


def energy_mlp(sizes: Sequence[int], activation: str, spectral_norm: bool) -> nn.Sequential:
    """Linear layers ``sizes[0] -> ... -> sizes[-1]`` with ``activation`` between them, each
    spectrally normalised when asked (Miyato et al. 2018)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        linear = nn.Linear(a, b)
        layers.append(spectral(linear) if spectral_norm else linear)
        if i < len(sizes) - 2:
            layers.append(ENERGY_ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class EBM(EnergyModel):
    """An energy-based model with an MLP energy, for flat data ``[N, D]``.

    Paper: Du & Mordatch, 2019 (arXiv:1903.08689); likelihoods by AIS (Neal 2001) with a
    reverse-AIS bracket (Grosse et al. 2015, arXiv:1511.02543).

    Args:
        num_dims: ``D``.
        hidden_dims: hidden widths of ``g_θ``.
        activation: ``"silu"``, ``"softplus"``, ``"elu"`` or ``"tanh"`` (smooth: the
            samplers follow the energy's gradient).
        spectral_norm: spectrally normalise every layer (a Lipschitz energy: smoother chains).
        ais: AIS settings over :attr:`ais_defaults` (fields of
            :class:`~ppgen.energy.AISSettings`, e.g. ``{"num_distributions": 2000}``).

    Example:
        >>> ebm = EBM(2, hidden_dims=(16,), ais={"num_distributions": 20})
        >>> ebm.ais_settings().num_distributions
        20
    """

    #: the recipe that takes the eight Gaussians past the ring-shaped plateau (NLL ≈ 2.37, the
    #: angles not yet learnt) within 30 epochs of 10,000 points: a high rate (1e-2; 1e-3 stays
    #: on the plateau) made safe by clipping, no momentum (the PCD gradient's sign flips with
    #: the chains), cosine decay
    fit_defaults: ClassVar[dict[str, Any]] = {
        "optimizer": {"model": {"name": "adam", "betas": [0.0, 0.999]}},
        "lr": 1e-2,
        "lr_schedule": "cosine",
        "max_grad_norm": 1.0,
        "batch_size": 128,
        "epochs": 30,
    }

    def __init__(
        self,
        num_dims: int,
        hidden_dims: Sequence[int] = (128, 128),
        activation: str = "silu",
        spectral_norm: bool = False,
        ais: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if activation not in ENERGY_ACTIVATIONS:
            raise ModelError(f"activation must be one of {sorted(ENERGY_ACTIVATIONS)}, got "
                             f"{activation!r}")
        self.setup_base(num_dims, ais)
        self.hidden_dims, self.activation = tuple(hidden_dims), activation
        self.spectral_norm = spectral_norm
        self.network = energy_mlp([num_dims, *self.hidden_dims, 1], activation, spectral_norm)

    def log_ratio(self, x: torch.Tensor) -> torch.Tensor:
        """``h(x) = -g_θ(x)`` (fp32), ``[N]``."""
        return -self.network(x).squeeze(-1).float()

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """``E(x) = g_θ(x) - log q_0(x)``, ``[N]``."""
        return -self.log_ratio(x) - self.base().log_prob(x)

    @classmethod
    def for_data(cls, info: DataInfo, **kwargs: Any) -> EBM:
        """An EBM for flat continuous data described by ``info``."""
        if info.likelihood != "continuous" or len(info.event_shape) != 1:
            raise ModelError(f"EBM models flat continuous data [N, D]; these are "
                             f"{info.likelihood} data of shape {tuple(info.event_shape)}: load "
                             "them in the 'continuous' representation (ppgen fit ... "
                             "--representation continuous)")
        return cls(info.num_dims, **kwargs)
