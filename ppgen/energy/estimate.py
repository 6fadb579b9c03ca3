"""What the evaluation layer serves energy models with: AIS log-likelihoods and their bracket.

:mod:`ppgen.evaluate.routing` registers these two functions for ``ModelKind.ENERGY``, so
``ppgen.log_likelihood(ebm, x)``, ``ppgen.evaluate.nll_report`` and ``ppgen evaluate`` reach them:

* :func:`energy_log_likelihood` — ``log p(x_n) = -E(x_n) - log Ẑ`` with ``log Ẑ`` the forward
  AIS estimate (Neal 2001) from ``num_particles`` chains. ``log Ẑ`` underestimates ``log Z`` in
  probability, so this number is optimistic; its bracket is in the report.
* :func:`energy_report` — the benchmark table: ``nll`` (the forward AIS estimate) inside its
  interval ``[nll_lower, nll_upper]`` from forward and reverse AIS (bidirectional Monte Carlo,
  Grosse et al. 2015, each end widened by two Monte Carlo standard errors), its width, the number
  of intermediate distributions and chains, and the run's diagnostics.

``log Ẑ`` does not depend on the data, so one AIS run serves every row; it is kept on the model
(:func:`log_partition`) until the model's parameters or buffers change (an optimiser step, a
``load_state_dict``, a move to another device) or other settings are asked for.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ppgen.energy.ais import AISResult, AISSettings, bdmc, forward_ais
from ppgen.energy.model import EnergyModel
from ppgen.errors import ModelError

__all__ = ["log_partition", "energies", "energy_log_likelihood", "energy_report"]

#: rows whose energies are computed at once when no batch size is given
ENERGY_ROWS = 2**15


def _state_key(model: torch.nn.Module) -> tuple:
    """Identifies the model's current values: every tensor's storage and version counter."""
    tensors = [*model.parameters(), *model.buffers()]
    return tuple((t.device.type, t.data_ptr(), t._version) for t in tensors)


def log_partition(model: EnergyModel, num_chains: int | None = None, *,
                  bidirectional: bool = False, settings: AISSettings | None = None,
                  generator: torch.Generator | None = None) -> AISResult:
    """AIS estimate of ``log Z`` of ``model`` (forward; with ``bidirectional``, the bracket).

    Args:
        model: the energy model.
        num_chains: AIS chains (default: the model's declared ``num_particles``).
        bidirectional: run reverse AIS too (:func:`~ppgen.energy.ais.bdmc`).
        settings: the path and transition (default: :meth:`EnergyModel.ais_settings`).
        generator: a seeded random stream; without one the global stream is used and the
            result is kept on the model for the next call with the same settings.
    """
    _check_energy(model)
    settings = settings or model.ais_settings()
    num_chains = num_chains or model.evaluation_options()["num_particles"]
    key = (_state_key(model), num_chains, settings)
    cache = model.__dict__.setdefault("_log_partition_cache", {})
    if generator is None:
        for found in (cache.get((*key, True)), None if bidirectional else cache.get((*key,
                                                                                      False))):
            if found is not None:
                return found
    run = bdmc if bidirectional else forward_ais
    with torch.no_grad():
        result = run(model.white_log_ratio, model.num_dims, settings, num_chains,
                     model.base_loc.device, generator=generator)
    if generator is None:
        cache.clear()
        cache[(*key, bidirectional)] = result
    return result


def energies(model: EnergyModel, x: torch.Tensor, batch_size: int | None = None
             ) -> torch.Tensor:
    """``E(x)`` ``[N]`` of checked data, ``batch_size`` rows at a time, in fp32, no graph."""
    rows = batch_size or ENERGY_ROWS
    with torch.no_grad():
        parts = [model.energy(chunk).float() for chunk in x.split(rows)]
    return torch.cat(parts)


def energy_log_likelihood(model: EnergyModel, x: Any, *, num_particles: int | None = None,
                          batch_size: int | None = None, **conditions: Any) -> torch.Tensor:
    """``[N]`` AIS log-likelihoods ``-E(x_n) - log Ẑ`` (nats; forward AIS with
    ``num_particles`` chains, an optimistic estimate: see :func:`energy_report`)."""
    x = _checked(model, x, conditions)
    result = log_partition(model, num_particles)
    return -energies(model, x, batch_size) - result.log_z


def energy_report(model: EnergyModel, x: Any, *, num_particles: int | None = None,
                  batch_size: int | None = None, samples: bool = False,
                  features: Any = None, sample_options: dict[str, Any] | None = None,
                  **conditions: Any) -> dict[str, Any]:
    """The ``ppgen evaluate`` table of an energy model: the NLL with its AIS bracket.

    Returns:
        A JSON-able dict, nats per datum: ``nll`` (the forward AIS estimate, as
        :func:`energy_log_likelihood` gives it) with its interval ``nll_lower`` /
        ``nll_upper`` and ``nll_width`` (the forward end less two of its Monte Carlo standard
        errors, the reverse end plus two of its own: :meth:`~ppgen.energy.AISResult.interval`),
        the raw BDMC ends ``nll_forward`` / ``nll_reverse``; ``n``; ``bits_per_dim``;
        ``mean_energy``; the same on ``log Z`` (``log_z_lower``, ``log_z_upper``,
        ``log_z_width``, ``log_z_forward``, ``log_z_reverse`` and their standard errors);
        ``num_distributions``, ``num_chains`` (= ``num_particles``), ``transition``,
        ``reverse_start`` (``"resampled"``: the reverse chains started at the forward chains'
        final states resampled by weight, so the upper end is approximate), ``ais_ess`` and
        ``ais_acceptance``. With ``samples`` the sample metrics of
        :func:`ppgen.metrics.model_sample_metrics` are added.
    """
    x = _checked(model, x, conditions)
    result = log_partition(model, num_particles, bidirectional=True)
    mean_energy = float(energies(model, x, batch_size).double().mean())
    summary = result.summary()
    lower = mean_energy + summary["log_z_lower"]
    upper = mean_energy + summary["log_z_upper"]
    report = {"nll": mean_energy + summary["log_z_forward"], "nll_lower": lower,
              "nll_upper": upper, "nll_width": upper - lower, "n": int(x.shape[0]),
              "nll_forward": mean_energy + summary["log_z_forward"],
              "nll_reverse": mean_energy + summary["log_z_reverse"],
              "mean_energy": mean_energy, "num_particles": result.num_chains, **summary}
    # bits per dimension as ppgen.evaluate.bits_per_dim computes them (the evaluation layer
    # imports this module, so it cannot be imported from here)
    report["bits_per_dim"] = report["nll"] / (model.num_dims * math.log(2.0))
    if samples:
        from ppgen.metrics.report import model_sample_metrics

        options = {k: v for k, v in (("features", features), ("sample_options", sample_options))
                   if v is not None}
        report.update(model_sample_metrics(model, x, **options))
    return report


def _check_energy(model: Any) -> None:
    if not isinstance(model, EnergyModel):
        raise ModelError(f"{type(model).__name__} is energy-based but not a "
                         "ppgen.energy.EnergyModel: its log-likelihood needs the partition "
                         "function, estimated by annealed importance sampling (AIS) from the "
                         "model's energy, Gaussian base and samplers; subclass EnergyModel, or "
                         "wrap a Pyro program with ppgen.energy.EnergyProgram")


def _checked(model: EnergyModel, x: Any, conditions: dict[str, Any]) -> torch.Tensor:
    _check_energy(model)
    if conditions:
        raise ModelError(f"{type(model).__name__} is unconditional: it takes no "
                         f"{', '.join(sorted(conditions))}")
    return model.check_data(x).to(model.base_loc.device)
