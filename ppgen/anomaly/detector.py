"""Anomaly detection with any explicit generative model, in scikit-learn's conventions.

A density model is an anomaly detector: ``log p(x)`` low means ``x`` is unusual.
:class:`Detector` trains a zoo model (or a model you built) with :func:`ppgen.fit`, scores data
with the shared evaluation layer (:func:`ppgen.log_likelihood`: exact for exact models, the
importance-weighted estimate for latent ones) and follows scikit-learn's outlier-detector API:
``fit(X)`` returns ``self``, ``score_samples(X)`` is higher for more normal data,
``decision_function(X) = score_samples(X) - offset_`` and ``predict(X)`` is ``+1`` (inlier) or
``-1`` (outlier). PyOD's conventions (higher = more abnormal, labels 0/1) are available as the
fitted attributes ``decision_scores_``, ``threshold_`` and ``labels_`` and through
:meth:`Detector.pyod`.

Raw likelihoods track how *simple* an input is and how many similar inputs were seen, not how
typical it is (Nalisnick et al., 2019): simple inputs such as a mostly blank image can score
higher than every normal one. For data fitted as they come (contaminated, unlabelled), three
remedies are options of the same detector, all through the shared evaluation layer:

* ``reference=``: the score is the likelihood *ratio* ``log p(x) - log p_ref(x)`` against a
  simpler model of the same rows (Ren et al., 2019; Schirrmeister et al., 2020; Serrà et al.,
  2020): what the reference also explains (pixel-level complexity) cancels, what only the
  model's structure explains remains;
* ``statistic="typicality"``: the distance of that score from its typical value on held-out
  rows, ``-|s(x) - E s|``, which also flags inputs *more* likely than normal ones;
* ``trim_rounds=``: trimmed likelihood: refit without the ``contamination`` share of training
  rows the model finds least likely, so mixed-in anomalies shape the model less.

Example:
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(200, 3))
    >>> det = Detector("rnade", contamination=0.05, epochs=5).fit(X)  # doctest: +SKIP
    >>> det.predict(X[:3])  # doctest: +SKIP
    array([1, 1, 1])
"""

from __future__ import annotations

import copy
import importlib
import math
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from ppgen.anomaly.metrics import threshold_at_fpr
from ppgen.data.info import DataInfo
from ppgen.errors import DataError, ModelError
from ppgen.protocol import GenerativeModel, ModelKind, model_class

__all__ = ["Detector", "PyODView", "LIKELIHOODS", "STATISTICS"]

#: what ``likelihood=`` accepts: how the features are modelled by a named model
LIKELIHOODS = ("continuous", "categorical", "bernoulli")
#: what ``statistic=`` accepts: the score itself, or its distance from its typical value
STATISTICS = ("likelihood", "typicality")


class Detector(OutlierMixin, BaseEstimator):
    """Anomaly detector backed by an explicit generative model.

    Args:
        model: a zoo model name (``"vae"``, ``"made"``, ``"rnade"``, ``"pixelcnn"``, a flow,
            ... — see ``ppgen fit --list``) built for the data with ``for_data``, or a
            :class:`~ppgen.GenerativeModel` instance (a copy is trained; yours is untouched).
        contamination: expected share of outliers in the training data, in ``(0, 0.5]``;
            ``offset_`` is that quantile of the training scores.
        fpr: target false-positive rate on held-out normal data; when set, ``offset_`` is that
            quantile of the scores of the validation split instead (needs
            ``validation_fraction > 0``).
        likelihood: how a named model treats the features: ``"continuous"`` (reals),
            ``"categorical"`` (integer levels ``0..num_levels-1``) or ``"bernoulli"`` (0/1).
        num_levels: levels of categorical data (default: the training maximum + 1).
        image_shape: ``(H, W)`` or ``(C, H, W)`` when a row is a flattened image (needed by
            image models such as ``"pixelcnn"``, and by :func:`plot_explanation`).
        model_options: constructor arguments of a named model (e.g. ``{"hidden_dim": 64}``).
        validation_fraction: share of the training rows held out for early stopping (and
            for ``fpr``); ``0`` trains on everything with the model's epoch budget.
        epochs, batch_size, lr: training-engine options (default: the model's recipe).
        fit_options: any other :func:`ppgen.fit` options (``patience``, ``weight_decay``, ...).
        num_particles: importance samples per datum for latent models' scores. ``None``
            (default): the model's declared evaluation, as in
            :func:`ppgen.evaluate.headline_log_likelihood` — 1000 samples for a VAE; a
            diffusion model's variational bound (one particle, closed-form KL terms).
        n_estimators: number of models trained (an ensemble when > 1: each from its own
            seed — initial weights, training shuffles and early-stopping split; with ``fpr``
            the threshold's held-out rows are set aside from every member first);
            the score is the mean of their log-likelihoods, the log of the geometric mean of
            their densities (a product of experts) up to a constant, so rows rank as the
            members agree. Averaging out the seed-to-seed variation of flexible models such as
            flows on small data sets ranks anomalies more reliably. (Members of a model
            instance passed as ``model`` all start from its weights and differ by training
            seed and split only.)
        reference: a simpler model (zoo name or instance, built and trained like ``model`` on
            the same rows; e.g. ``"independent-categorical"`` beside a ``"markov-chain"`` or a
            PixelCNN): the score becomes ``log p(x) - log p_ref(x)``.
        reference_options: constructor arguments of a named reference.
        statistic: ``"likelihood"`` (the score as above, higher is more normal) or
            ``"typicality"``: ``-|s(x) - typical_|`` with ``typical_`` the mean score of the
            validation rows (of the training rows without them).
        trim_rounds: rounds of trimmed-likelihood refitting: each drops the ``contamination``
            share of training rows with the lowest likelihood under the last fit and trains a
            fresh model (same seed) on the rest; 0 fits once.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        random_state: seed of the split, the initial weights, training and scoring.

    Attributes:
        model_: the trained :class:`~ppgen.GenerativeModel` (the first of ``estimators_``).
        estimators_: the ``n_estimators`` trained models.
        offset_: threshold on ``score_samples``; ``decision_function`` subtracts it.
        n_features_in_: number of features seen in ``fit``.
        decision_scores_: PyOD view: training anomaly scores ``-score_samples(X)`` ``[N]``.
        threshold_: PyOD view: ``-offset_``.
        labels_: PyOD view: training labels, 1 for outliers, 0 for inliers ``[N]``.
        history_: the training :class:`~ppgen.history.History` (of ``model_``).
        histories_: the histories of ``estimators_``.
        references_: the trained reference of each member (with ``reference``).
        typical_: the typical score (with ``statistic="typicality"``), else ``None``.
    """

    def __init__(
        self,
        model: str | GenerativeModel = "vae",
        *,
        contamination: float = 0.1,
        fpr: float | None = None,
        likelihood: str = "continuous",
        num_levels: int | None = None,
        image_shape: tuple[int, ...] | None = None,
        model_options: dict[str, Any] | None = None,
        validation_fraction: float = 0.2,
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        fit_options: dict[str, Any] | None = None,
        num_particles: int | None = None,
        n_estimators: int = 1,
        reference: str | GenerativeModel | None = None,
        reference_options: dict[str, Any] | None = None,
        statistic: str = "likelihood",
        trim_rounds: int = 0,
        device: str = "auto",
        random_state: int = 0,
    ) -> None:
        self.model = model
        self.contamination = contamination
        self.fpr = fpr
        self.likelihood = likelihood
        self.num_levels = num_levels
        self.image_shape = image_shape
        self.model_options = model_options
        self.validation_fraction = validation_fraction
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.fit_options = fit_options
        self.num_particles = num_particles
        self.n_estimators = n_estimators
        self.reference = reference
        self.reference_options = reference_options
        self.statistic = statistic
        self.trim_rounds = trim_rounds
        self.device = device
        self.random_state = random_state

    # ----------------------------------------------------------------- scikit-learn API
    def fit(self, X: Any, y: Any = None) -> Detector:
        """Train the model on normal data ``X: [N, D]`` and set the threshold.

        Args:
            X: training data (NumPy array, tensor or array-like), rows assumed normal up to
                ``contamination``.
            y: ignored (unsupervised), accepted for pipelines.

        Returns:
            ``self``.

        Raises:
            ValueError: bad options, or data the model cannot take (NaN/inf, wrong dtype,
                values outside the likelihood's support) — as :class:`ppgen.errors.DataError`.
        """
        import ppgen

        self._check_options()
        x = self._rows(X, reset=True)
        options = {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr}
        options.update(self.fit_options or {})
        options.setdefault("progress", False)
        pool, held_out = x, None
        if self.fpr is not None and self.n_estimators > 1:  # normal rows no member sees
            pool, held_out = self._split(x, self.random_state)
        self.estimators_, self.histories_, self.references_ = [], [], []
        for seed in self._member_seeds():
            model = self._build(self.model, self.model_options, pool, seed)
            pool = model.check_data(pool, "training data")
            train, val = self._split(pool, seed)
            rows = train
            history = ppgen.fit(model, rows, val, device=self.device, seed=seed, **options)
            for _ in range(self.trim_rounds):  # trimmed likelihood: refit on the likelier rows
                rows = train[self._kept(model, train)]
                model = self._build(self.model, self.model_options, pool, seed)
                history = ppgen.fit(model, rows, val, device=self.device, seed=seed, **options)
            self.estimators_.append(model.eval())
            self.histories_.append(history)
            if self.reference is not None:  # the same rows, the same training options
                ref = self._build(self.reference, self.reference_options, pool, seed)
                ppgen.fit(ref, ref.check_data(rows, "training data"), val, device=self.device,
                          seed=seed, **options)
                self.references_.append(ref.eval())
        self.model_, self.history_ = self.estimators_[0], self.histories_[0]
        x = self.model_.check_data(x, "training data")
        self.typical_ = None
        if self.statistic == "typicality":  # held-out rows when there are any
            typical_rows = next(r for r in (held_out, val, x) if r is not None)
            self.typical_ = float(np.mean(self._raw_scores(typical_rows)))
        self.offset_ = self._offset(x, val if held_out is None else held_out)
        self._set_pyod_view(x)
        return self

    def score_samples(self, X: Any) -> np.ndarray:
        """Per-row log-likelihood ``log p(x)`` in nats ``[N]``: higher is more normal.

        Exact for exact models; the importance-weighted estimate with ``num_particles``
        samples for latent models (with one particle, their ELBO: a diffusion model's bound;
        seeded with ``random_state``, so repeatable). With a
        ``reference``, ``log p(x) - log p_ref(x)``; with ``statistic="typicality"``, the
        distance of that from ``typical_``, negated.

        Raises:
            ValueError: a feature count differing from ``fit``, NaN/inf, or values outside the
                model's support (:class:`ppgen.errors.DataError`) — never a silent score.
        """
        check_is_fitted(self, "model_")
        return self._scores(self._checked(X))

    def decision_function(self, X: Any) -> np.ndarray:
        """``score_samples(X) - offset_`` ``[N]``: negative for outliers."""
        return self.score_samples(X) - self.offset_

    def predict(self, X: Any) -> np.ndarray:
        """``+1`` for inliers, ``-1`` for outliers ``[N]``."""
        return np.where(self.decision_function(X) < 0, -1, 1)

    # ----------------------------------------------------------------- more than scikit-learn
    def pyod(self) -> PyODView:
        """This fitted detector in PyOD's conventions (higher = more abnormal, labels 0/1)."""
        check_is_fitted(self, "model_")
        return PyODView(self)

    def explain(self, X: Any) -> np.ndarray:
        """Per-feature contributions ``[N, D]`` to ``score_samples`` (they sum to it).

        Contribution ``d`` is ``log p(x_d | x_<d)`` for autoregressive models: the features
        the model found unlikely given the ones before them. A diffusion model's parts are each
        pixel's share of its bound for one seeded draw of the forward process (they sum to
        that draw's bound, an unbiased estimate of the score). Plot them with
        :func:`ppgen.anomaly.plot_explanation`.

        Raises:
            ModelError: the model has no per-feature decomposition of its likelihood.
        """
        check_is_fitted(self, "model_")
        if self.statistic != "likelihood":
            raise ModelError("a typicality score has no per-feature parts (it is a distance "
                             "from the typical score); explain with statistic='likelihood'")
        if getattr(self.model_, "log_prob_per_dim", None) is None:
            raise ModelError(
                f"{type(self.model_).__name__} has no per-feature decomposition of its "
                "log-likelihood; explanations need an autoregressive model (fvsbn, nade, "
                "rnade, made, pixelcnn, pixelrnn, markov-chain) or independent pixels"
            )
        refs = self.references_ or [None] * len(self.estimators_)
        if any(r is not None and getattr(r, "log_prob_per_dim", None) is None for r in refs):
            raise ModelError(
                f"the reference {type(self.references_[0]).__name__} has no per-feature "
                "decomposition; a likelihood ratio is explained when both models have one "
                "(e.g. an independent or autoregressive reference)")
        x = self._checked(X)
        parts = []
        with torch.no_grad():  # an ensemble's score is the members' mean: so are its parts
            for m, r in zip(self.estimators_, refs):
                part = self._member_parts(m, x)
                if r is not None:
                    part = part - self._member_parts(r, x)
                parts.append(part)
        return np.mean(parts, axis=0)

    def _member_parts(self, model: GenerativeModel, x: torch.Tensor) -> np.ndarray:
        """``log_prob_per_dim`` ``[N, D]`` of one model, seeded like its score."""
        with torch.random.fork_rng(devices=_cuda_devices(model.device)):
            torch.manual_seed(self.random_state)
            return model.log_prob_per_dim(x.to(model.device)).double().cpu().numpy()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = _is_latent(self.model)
        tags.input_tags.allow_nan = False
        return tags

    # ----------------------------------------------------------------- internals
    def _check_options(self) -> None:
        if not (isinstance(self.contamination, (int, float)) and 0 < self.contamination <= 0.5):
            raise ValueError(f"contamination must be in (0, 0.5], got {self.contamination!r}")
        if self.fpr is not None and not 0 < self.fpr < 1:
            raise ValueError(f"fpr must be in (0, 1), got {self.fpr!r}")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(
                f"validation_fraction must be in [0, 1), got {self.validation_fraction!r}"
            )
        if self.fpr is not None and self.validation_fraction == 0:
            raise ValueError("fpr needs held-out normal data: set validation_fraction > 0")
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(
                f"likelihood must be one of {', '.join(LIKELIHOODS)}, got {self.likelihood!r}"
            )
        if not isinstance(self.model, (str, GenerativeModel)):
            raise ValueError(
                "model must be a zoo model name or a ppgen.GenerativeModel, "
                f"got {type(self.model).__name__}"
            )
        if self.num_particles is not None and not (
                isinstance(self.num_particles, int) and self.num_particles >= 1):
            raise ValueError(f"num_particles must be an integer >= 1 or None (the model's "
                             f"declared default), got {self.num_particles!r}")
        if not (isinstance(self.n_estimators, int) and self.n_estimators >= 1):
            raise ValueError(f"n_estimators must be an integer >= 1, got {self.n_estimators!r}")
        if self.reference is not None and not isinstance(self.reference, (str, GenerativeModel)):
            raise ValueError("reference must be a zoo model name, a ppgen.GenerativeModel or "
                             f"None, got {type(self.reference).__name__}")
        if self.statistic not in STATISTICS:
            raise ValueError(
                f"statistic must be one of {', '.join(STATISTICS)}, got {self.statistic!r}")
        if not (isinstance(self.trim_rounds, int) and self.trim_rounds >= 0):
            raise ValueError(f"trim_rounds must be an integer >= 0, got {self.trim_rounds!r}")

    def _rows(self, X: Any, reset: bool) -> torch.Tensor:
        """``X`` as a 2-D tensor, with scikit-learn's checks (feature count, NaN/inf,
        complex, sparse, 1-D input) for arrays; tensors keep their device and dtype."""
        if isinstance(X, torch.Tensor):
            return self._tensor_rows(X, reset)
        dtype = None if self.likelihood == "continuous" else "numeric"
        arr = validate_data(self, X, reset=reset, dtype=dtype or [np.float64, np.float32])
        arr = np.ascontiguousarray(arr)
        return torch.from_numpy(arr if arr.flags.writeable else arr.copy())

    def _tensor_rows(self, X: torch.Tensor, reset: bool) -> torch.Tensor:
        if X.dim() != 2:
            raise DataError(
                f"expected 2-D data [N, D] (one row per datum), got shape {tuple(X.shape)}; "
                "flatten images to rows first"
            )
        if reset:
            self.n_features_in_ = X.shape[1]
        elif X.shape[1] != self.n_features_in_:
            raise DataError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input"
            )
        return X

    def _checked(self, X: Any) -> torch.Tensor:
        return self.model_.check_data(self._rows(X, reset=False), "X")

    def _member_seeds(self) -> list[int]:
        """``[random_state]`` for one model; for an ensemble, independent seeds drawn from
        ``random_state`` (NumPy's ``SeedSequence``)."""
        if self.n_estimators == 1:
            return [self.random_state]
        states = np.random.SeedSequence(self.random_state).generate_state(self.n_estimators)
        return [int(s) for s in states]

    def _build(self, spec: str | GenerativeModel, model_options: dict[str, Any] | None,
               x: torch.Tensor, seed: int) -> GenerativeModel:
        if isinstance(spec, GenerativeModel):  # members differ by training seed only
            return copy.deepcopy(spec)
        importlib.import_module("ppgen.models")  # fills the zoo registry
        torch.manual_seed(seed)  # the initial weights
        return model_class(spec).for_data(self._info(x), **(model_options or {}))

    def _kept(self, model: GenerativeModel, x: torch.Tensor) -> torch.Tensor:
        """``[N]`` bool: the rows of ``x`` outside the ``contamination`` share that ``model``
        finds least likely (ties kept)."""
        ll = torch.from_numpy(self._member_log_likelihood(model.eval(), x))
        return (ll >= torch.quantile(ll, self.contamination)).to(x.device)

    def _info(self, x: torch.Tensor) -> DataInfo:
        levels = self.num_levels
        if self.likelihood == "categorical" and levels is None:
            if x.is_floating_point() and not torch.isfinite(x).all():
                raise DataError("training data contain NaN or inf values")
            levels = int(x.max()) + 1
        if self.likelihood == "bernoulli":
            levels = 2
        shape = tuple(self.image_shape) if self.image_shape else None
        if shape and math.prod(shape) != x.shape[1]:
            raise ValueError(
                f"image_shape {shape} has {math.prod(shape)} pixels but rows have "
                f"{x.shape[1]} features"
            )
        return DataInfo((x.shape[1],), self.likelihood, levels, shape, name="detector")

    def _split(self, x: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(train, validation)`` rows, the validation share drawn with ``seed``."""
        n_val = int(round(self.validation_fraction * x.shape[0]))
        if n_val < 1 or x.shape[0] - n_val < 1:
            if self.fpr is not None:
                raise ValueError(
                    f"fpr needs held-out rows, but {x.shape[0]} rows with validation_fraction "
                    f"{self.validation_fraction} leave none: pass more data"
                )
            return x, None
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(x.shape[0], generator=g).to(x.device)
        return x[perm[n_val:]], x[perm[:n_val]]

    def _member_log_likelihood(self, model: GenerativeModel, x: torch.Tensor) -> np.ndarray:
        """``log p(x)`` ``[N]`` of one trained model (seeded: repeatable for latent models)."""
        from ppgen.evaluate import headline_log_likelihood, log_likelihood

        # the model's declared evaluation (a diffusion model's bound), or K importance samples
        score = headline_log_likelihood if self.num_particles is None else log_likelihood
        with torch.random.fork_rng(devices=_cuda_devices(model.device)):
            torch.manual_seed(self.random_state)
            ll = score(model, x.to(model.device), num_particles=self.num_particles)
        return ll.double().cpu().numpy()

    def _raw_scores(self, x: torch.Tensor) -> np.ndarray:
        """The members' mean log-likelihood (ratio, with a reference) ``[N]``."""
        total = 0.0
        refs = self.references_ or [None] * len(self.estimators_)
        for model, ref in zip(self.estimators_, refs):
            total = total + self._member_log_likelihood(model, x)
            if ref is not None:
                total = total - self._member_log_likelihood(ref, x)
        return total / len(self.estimators_)

    def _scores(self, x: torch.Tensor) -> np.ndarray:
        """``score_samples``: the raw score, or its typicality."""
        raw = self._raw_scores(x)
        return raw if self.typical_ is None else -np.abs(raw - self.typical_)

    def _offset(self, x: torch.Tensor, val: torch.Tensor | None) -> float:
        if self.fpr is not None:
            return threshold_at_fpr(self._scores(val), self.fpr)
        return threshold_at_fpr(self._scores(x), self.contamination)

    def _set_pyod_view(self, x: torch.Tensor) -> None:
        self.decision_scores_ = -self._scores(x)
        self.threshold_ = -self.offset_
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(int)


class PyODView:
    """A fitted :class:`Detector` in PyOD's conventions: higher scores are more abnormal.

    Attributes:
        decision_scores_: training anomaly scores ``[N]``.
        threshold_: scores above it are outliers.
        labels_: training labels, 1 for outliers and 0 for inliers ``[N]``.
    """

    def __init__(self, detector: Detector) -> None:
        self.detector = detector
        self.decision_scores_ = detector.decision_scores_
        self.threshold_ = detector.threshold_
        self.labels_ = detector.labels_

    def decision_function(self, X: Any) -> np.ndarray:
        """Anomaly scores ``-log p(x)`` ``[N]`` (higher = more abnormal)."""
        return -self.detector.score_samples(X)

    def predict(self, X: Any) -> np.ndarray:
        """1 for outliers, 0 for inliers ``[N]``."""
        return (self.decision_function(X) > self.threshold_).astype(int)


def _is_latent(model: Any) -> bool:
    cls = type(model) if isinstance(model, GenerativeModel) else None
    if cls is None:
        importlib.import_module("ppgen.models")
        try:
            cls = model_class(model)
        except (ModelError, TypeError):
            return False
    return cls.kind == ModelKind.LATENT


def _cuda_devices(device: torch.device) -> list[int]:
    return [device.index or 0] if device.type == "cuda" else []
