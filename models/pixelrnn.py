"""PixelRNN: two-dimensional LSTMs over images, one conditional per pixel and channel.

The network of van den Oord, Kalchbrenner & Kavukcuoglu, 2016, "Pixel Recurrent Neural
Networks" (ICML, arXiv:1601.06759, §3.1-3.4) computes every conditional ``p(x_i | x_<i)`` of
an image in one teacher-forced pass:

- a ``k x k`` masked convolution of type A (the paper's 7 x 7; on the 8 x 8 digits the
  default 3 x 3 does better than 5 x 5), plus a learned position bias ``[p, H, W]`` (the
  images are small: where a pixel sits matters; as in :class:`~ppgen.models.pixelcnn.PixelCNN`);
- ``num_layers`` LSTM layers, each with a residual connection (paper §3.3, Fig. 5): the
  layer's ``p``-channel input goes through an LSTM with ``s = p // 2`` state channels, whose
  output is projected back to ``p`` channels with a ``1 x 1`` convolution and added to the
  input;
  - :class:`RowLSTM` (§3.1): rows are processed top to bottom; the input-to-state component
    is a ``1 x k_r`` type-B masked convolution over the row (the pixel and those to its
    left), computed for the whole image at once; the state-to-state component is a
    ``1 x k_r`` convolution of the previous row's hidden state. Its receptive field is a
    triangle above the pixel (see :class:`RowLSTM`);
  - :class:`DiagonalBiLSTM` (§3.2): the input map is skewed (row ``r`` shifted right by
    ``r``: ``[n, c, H, W] -> [n, c, H, W + H - 1]``) so that each column of the skewed map
    is a diagonal of the image; the input-to-state component is a ``1 x 1`` type-B masked
    convolution, the state-to-state component a ``2 x 1`` convolution over the previous
    column (the pixel to the left and the one above), processed column by column, then
    unskewed. A second direction runs on the horizontally mirrored map; its output is
    shifted down one row before it is added to the first one, so no pixel sees itself or
    the future. Its receptive field is the whole context (every row above, the pixels to
    the left), with no blind spot;
- ReLU and ``1 x 1`` type-B masked convolutions to the head's parameters.

Channels of a pixel are generated in turn (R, then G given R, then B given R and G), as in
PixelCNN (§3.4): the residual channels and the LSTM state channels are split into ``C``
groups; the type-A input layer and every input-to-state convolution carry the channel masks
of :mod:`ppgen.models.masked_conv`, gates are computed per group, and the state-to-state
convolutions, which only see earlier rows (Row LSTM) or earlier diagonals (Diagonal
BiLSTM), need none.

One deliberate addition to the paper's Diagonal BiLSTM: the mirrored direction's
input-to-state also reads the image itself at its own position (an unmasked ``1 x 1``
convolution of the pixel's features). This is allowed because that direction's output is
shifted down one row, and it is needed: the layer input at a pixel (a type-A / type-B
feature) never carries that pixel's last channel, so without it the last pixel of the row
above (its last channel, for colour images) would be out of reach of every pixel left of
the ``k // 2`` nearest columns, in every layer.

Flat layout and ordering are PixelCNN's (:func:`~ppgen.models.pixelcnn.pixel_order`): data
``[N, C H W]`` laid out as ``image.reshape(D)``, generated in raster order of pixels and
R -> G -> B inside a pixel.

Example:
    >>> model = PixelRNN((1, 4, 4), hidden_channels=8, num_layers=1)
    >>> model.sample(3).shape
    torch.Size([3, 16])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

from ppgen.distributions.heads import Head
from ppgen.errors import ModelError
from ppgen.models.autoregressive import (
    ConditionalNet,
    MaskedLinear,
    TrainingDropout,
)
from ppgen.models.masked_conv import MaskedConv2d, causal_mask, channel_groups, channel_mask
from ppgen.models.pixelcnn import (
    ImageAutoregressiveModel,
    PixelCNNNet,
    _check_image_shape,
    _check_network,
    pixel_order,
    pointwise,
)

if TYPE_CHECKING:
    pass

__all__ = ["PixelRNN", "PixelRNNNet", "RowLSTM", "DiagonalBiLSTM", "skew", "unskew", "LAYERS"]

#: the recurrent layers of the paper, by name
LAYERS = ("diagonal-bilstm", "row-lstm")


def skew(x: torch.Tensor, dim: int = -2) -> torch.Tensor:
    """Shift row ``r`` right by ``r``: ``[..., H, W, *t] -> [..., H, W + H - 1, *t]``.

    ``H`` is dimension ``dim``, ``W`` the next one, ``t`` any trailing dimensions (channels
    last); new positions are zeros. Column ``j`` of the result holds the image's diagonal
    ``{(r, j - r)}``.
    """
    dim = dim % x.dim()
    H, W = x.shape[dim : dim + 2]
    trailing = (0, 0) * (x.dim() - dim - 2)
    flat = F.pad(x, trailing + (0, H)).flatten(dim, dim + 1)  # row r starts at r (W + H - 1) + r
    return flat.narrow(dim, 0, H * (W + H - 1)).unflatten(dim, (H, W + H - 1))


def unskew(y: torch.Tensor, width: int, dim: int = -2) -> torch.Tensor:
    """The inverse of :func:`skew`: ``[..., H, W + H - 1, *t] -> [..., H, W, *t]``."""
    dim = dim % y.dim()
    H, S = y.shape[dim : dim + 2]
    trailing = (0, 0) * (y.dim() - dim - 2)
    flat = F.pad(y.flatten(dim, dim + 1), trailing + (0, H))  # rows of S + 1: (r, r + j) -> (r, j)
    return flat.unflatten(dim, (H, S + 1)).narrow(dim + 1, 0, width)


def _lstm_cell(
    gates: torch.Tensor, cell: torch.Tensor, dim: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step (paper eq. 3).

    Args:
        gates: the pre-activations ``[o, f, i, g]``, ``s`` channels each, along ``dim``
            (``4 s`` there).
        cell: the previous cell state (``s`` channels along ``dim``).

    Returns:
        ``(h, c)``: ``c = sigma(f) c + sigma(i) tanh(g)``, ``h = sigma(o) tanh(c)``.
    """
    o, f, i, g = gates.chunk(4, dim=dim)
    c = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def _masked_linear(layer: MaskedLinear, h: torch.Tensor) -> torch.Tensor:
    """``layer``'s (single) mask applied to channels-last ``h: [..., in] -> [..., out]``."""
    return F.linear(h, layer.weight * layer.masks[0], layer.bias)


class RowLSTM(nn.Module):
    """Row LSTM with a residual connection: ``h -> h + W_1x1 LSTM(h)`` (paper §3.1).

    Rows are processed top to bottom. The gates of row ``r`` are
    ``K_is * h[r] + K_ss * state[r - 1]``: ``K_is`` a ``1 x k`` convolution masked to the
    pixel and those left of it (type-B channel mask at the pixel), ``K_ss`` a full
    ``1 x k`` convolution of the previous row's hidden state (no channel mask: every pixel
    of row ``r - 1`` comes before row ``r``).

    Receptive field (``a = k // 2``): the state at ``(r, c)`` reads the layer input at
    ``(r, c - a .. c)`` and at ``(r - j, c - (j + 1) a .. c + j a)`` for ``j >= 1``
    (clipped to the image): a triangle above the pixel, wider at the top.

    Args:
        groups: ``[p]`` channel group of every residual channel.
        state_groups: ``[s]`` channel group of every state channel.
        kernel_size: ``k`` (odd).
        dropout: dropout rate on the LSTM output.

    Shapes: ``h: [n, p, H, W] -> [n, p, H, W]``.
    """

    def __init__(
        self, groups: torch.Tensor, state_groups: torch.Tensor, kernel_size: int, dropout: float
    ) -> None:
        super().__init__()
        s, half = state_groups.numel(), kernel_size // 2
        mask = causal_mask(1, kernel_size, channel_mask(groups, state_groups.repeat(4), "B"))
        self.input_to_state = MaskedConv2d(mask, (half, half, 0, 0))
        self.state_to_state = nn.Conv1d(s, 4 * s, kernel_size, padding=half)
        self.out = pointwise(state_groups, groups)
        self.dropout = TrainingDropout(dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        gates_in = self.input_to_state(h)  # [n, 4 s, H, W]
        n, _, _, W = gates_in.shape
        state = h.new_zeros(n, self.state_to_state.in_channels, W)
        cell = torch.zeros_like(state)
        rows = []
        for gates_r in gates_in.unbind(2):  # top to bottom
            state, cell = _lstm_cell(gates_r + self.state_to_state(state), cell)
            rows.append(state)
        return h + self.out(self.dropout(torch.stack(rows, dim=2)))


class DiagonalBiLSTM(nn.Module):
    """Diagonal BiLSTM with a residual connection: ``h -> h + W_1x1 BiLSTM(h)`` (paper §3.2).

    Each direction computes its input-to-state gates with a ``1 x 1`` type-B masked
    convolution (channels last, before skewing: a ``1 x 1`` convolution commutes with the
    skew), skews them (:func:`skew`) and runs over the ``W + H - 1`` columns of the skewed
    map: the gates of column ``t`` add a ``2 x 1`` convolution of column ``t - 1``'s
    hidden state (in the image: the pixel to the left and the one above). States off the
    image are held at zero. The second direction does the same on the mirrored map
    (``flip(-1)``, so it sees the pixels above and to the *right*); its output is mirrored
    back and shifted down one row before it is added to the first direction's. Its
    input-to-state also reads the image features ``x`` at its position (unmasked; see the
    module docstring for why this is allowed and needed).

    Receptive field: the state at ``(r, c)`` reads the layer input at every ``(r', c')``
    with ``r' <= r, c' <= c`` (first direction) and ``r' <= r - 1, c' >= c`` (second), and
    the image at ``r' <= r - 1, c' >= c``: with the type-A input layer, every pixel before
    ``(r, c)``.

    Args:
        groups: ``[p]`` channel group of every residual channel.
        state_groups: ``[s]`` channel group of every state channel.
        image_channels: ``C F``, channels of the image features ``x``.
        dropout: dropout rate on the LSTM output.

    Shapes: ``h: [n, p, H, W]``, ``x: [n, C F, H, W] -> [n, p, H, W]``.
    """

    def __init__(
        self,
        groups: torch.Tensor,
        state_groups: torch.Tensor,
        image_channels: int,
        dropout: float,
    ) -> None:
        super().__init__()
        s, gate_groups = state_groups.numel(), state_groups.repeat(4)
        mask_b = channel_mask(groups, gate_groups, "B")  # [4 s, p]
        self.input_to_state = MaskedLinear(mask_b.unsqueeze(0))
        image = torch.ones(4 * s, image_channels)  # the mirrored direction reads x freely
        self.mirrored_input_to_state = MaskedLinear(torch.cat([mask_b, image], 1).unsqueeze(0))
        # both directions' 2 x 1 kernels, [2, (above, left) x s, 4 s]: one batched matmul
        bound = 1.0 / math.sqrt(2 * s)  # the default scaling of a 2 x 1 convolution
        self.state_weight = nn.Parameter(torch.empty(2, 2 * s, 4 * s).uniform_(-bound, bound))
        self.state_bias = nn.Parameter(torch.empty(2, 1, 4 * s).uniform_(-bound, bound))
        self.out = pointwise(state_groups, groups)
        self.dropout = TrainingDropout(dropout)

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        n, _, H, W = h.shape
        h_last, x_last = h.permute(0, 2, 3, 1), x.permute(0, 2, 3, 1)  # [n, H, W, channels]
        mirrored = torch.cat([h_last, x_last], dim=-1).flip(2)
        gates = torch.stack(
            [
                _masked_linear(self.input_to_state, h_last),
                _masked_linear(self.mirrored_input_to_state, mirrored),
            ],
            dim=3,
        )  # [n, H, W, 2, 4 s]
        gates = skew(gates, dim=1).permute(2, 3, 0, 1, 4).contiguous()  # [S, 2, n, H, 4 s]
        states = self._scan(gates.flatten(2, 3), skew(h.new_ones(H, W)).t())  # [S, 2, n H, s]
        maps = unskew(states.unflatten(2, (n, H)).permute(2, 3, 0, 1, 4), W, dim=1)
        left, right = maps.permute(3, 0, 4, 1, 2).unbind(0)  # [n, s, H, W] each
        below = F.pad(right.flip(-1), (0, 0, 1, 0))[..., :-1, :]  # row r holds row r - 1
        return h + self.out(self.dropout(left + below))

    def _scan(self, gates_in: torch.Tensor, on_image: torch.Tensor) -> torch.Tensor:
        """Both directions over the skewed columns: ``[S, 2, n H, 4 s] -> [S, 2, n H, s]``.

        States are ``[2, n H, s]`` (direction first, channels last), so each step's two
        ``2 x 1`` convolutions are one batched matrix product; ``on_image: [S, H]`` (1 on
        the image, 0 off it) holds the states off the image at zero.
        """
        _, _, nH, four_s = gates_in.shape
        H = on_image.shape[1]
        state = gates_in.new_zeros(2, nH, four_s // 4)
        cell = torch.zeros_like(state)
        keep = on_image.repeat(1, nH // H).unsqueeze(-1)  # [S, n H, 1]
        columns = []
        for gates_t, keep_t in zip(gates_in.unbind(0), keep.unbind(0)):
            above = F.pad(state.unflatten(1, (-1, H)), (0, 0, 1, 0))[:, :, :-1].flatten(1, 2)
            both = torch.cat([above, state], dim=-1)  # [2, n H, 2 s]: rows r - 1, r of t - 1
            recurrent = torch.baddbmm(self.state_bias, both, self.state_weight)
            state, cell = _lstm_cell(gates_t + recurrent, cell, dim=-1)
            state, cell = state * keep_t, cell * keep_t
            columns.append(state)
        return torch.stack(columns)


class PixelRNNNet(ConditionalNet):
    """The PixelRNN network: features ``[n, D, F]`` -> parameters ``[n, D, P]``.

    Internally ``[n, D, F] -> [n, C F, H, W]`` (input channel ``c F + f`` in group ``c``), the
    type-A input layer with a learned position bias ``[p, H, W]``, ``num_layers`` residual
    LSTM layers, and a ReLU / ``1 x 1`` type-B head ``[n, C P, H, W]`` (output channel
    ``c P + j`` in group ``c``) -> ``[n, D, P]`` (the layout of
    :class:`~ppgen.models.pixelcnn.PixelCNNNet`).

    Args:
        image_shape: ``(C, H, W)``.
        head: the output head (``F`` features, ``P`` parameters per dimension).
        hidden_channels: ``p`` residual channels (at least ``2 C``); the LSTMs have
            ``p // 2`` state channels.
        num_layers: LSTM layers after the input layer.
        kernel_size: ``k`` of the ``k x k`` type-A input layer (odd).
        layer: ``"diagonal-bilstm"`` or ``"row-lstm"``.
        row_kernel_size: ``k_r`` of the Row LSTM's ``1 x k_r`` convolutions (odd).
        dropout: dropout rate on every LSTM output.
    """

    to_image = PixelCNNNet.to_image
    from_image = PixelCNNNet.from_image

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        head: Head,
        hidden_channels: int,
        num_layers: int,
        kernel_size: int,
        layer: str,
        row_kernel_size: int,
        dropout: float,
    ) -> None:
        C, H, W = image_shape
        super().__init__(C * H * W, head)
        self.image_shape = image_shape
        self.diagonal = layer == "diagonal-bilstm"
        hidden = channel_groups(hidden_channels, C)
        state = channel_groups(hidden_channels // 2, C)
        inputs = torch.arange(C).repeat_interleave(head.num_features)
        outputs = torch.arange(C).repeat_interleave(head.num_params)
        half = kernel_size // 2
        mask_a = causal_mask(kernel_size, kernel_size, channel_mask(inputs, hidden, "A"))
        self.input = MaskedConv2d(mask_a, (half,) * 4)
        self.position = nn.Parameter(torch.zeros(hidden_channels, H, W))
        self.layers = nn.ModuleList(
            DiagonalBiLSTM(hidden, state, inputs.numel(), dropout)
            if self.diagonal
            else RowLSTM(hidden, state, row_kernel_size, dropout)
            for _ in range(num_layers)
        )
        self.head_hidden = pointwise(hidden, hidden)
        self.head_out = pointwise(hidden, outputs)
        self.register_buffer("order", pixel_order(C, H, W), persistent=False)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """Residual features ``[n, p, H, W]`` of the image features ``x: [n, C F, H, W]``."""
        h = self.input(x) + self.position
        for layer in self.layers:
            h = layer(h, x) if self.diagonal else layer(h)
        return h

    def forward_features(self, f: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.head_hidden(torch.relu(self.hidden(self.to_image(f)))))
        return self.from_image(self.head_out(h))


class PixelRNN(ImageAutoregressiveModel):
    """PixelRNN over ``C x H x W`` images of integer levels or bits, flat data ``[N, C H W]``.

    ``p(x) = prod_pixels prod_channels p(x_{ch, r, c} | pixels before (r, c), channels < ch)``,
    each conditional a softmax over ``K`` levels (categorical), a discretised logistic mixture
    over the same levels, or a Bernoulli; the network (Row LSTM or Diagonal BiLSTM layers)
    and the flat layout are described in the module docstring. ``log_prob`` is one pass
    (the LSTMs run over ``H`` rows or ``W + H - 1`` diagonals inside it); sampling runs the
    network ``D`` times.

    Paper: van den Oord, Kalchbrenner & Kavukcuoglu, 2016, "Pixel Recurrent Neural Networks"
    (ICML, arXiv:1601.06759).

    Args:
        image_shape: ``(C, H, W)``, or ``(H, W)`` for grey images.
        likelihood: ``"bernoulli"``, ``"categorical"`` or ``"logistic-mixture"``.
        num_levels: ``K`` for the level heads (17 for the digits).
        num_components: ``C`` of the logistic-mixture head.
        hidden_channels: ``p``, residual channels of every layer (the paper's ``2h``; at
            least twice the image's ``C``); the LSTMs have ``p // 2`` state channels.
        num_layers: LSTM layers after the type-A input layer.
        layer: ``"diagonal-bilstm"`` (full receptive field) or ``"row-lstm"`` (triangular
            receptive field, ``H`` sequential steps instead of ``W + H - 1``).
        kernel_size: ``k``, odd: the type-A input layer is ``k x k``.
        row_kernel_size: ``k_r``, odd: the Row LSTM's ``1 x k_r`` input-to-state and
            state-to-state kernels (3 in the paper; unused by the Diagonal BiLSTM).
        dropout: dropout rate on every LSTM output (only in training mode with gradients:
            see :class:`~ppgen.models.autoregressive.TrainingDropout`).

    Example:
        >>> model = PixelRNN((3, 2, 2), likelihood="categorical", num_levels=4,
        ...                  hidden_channels=6, num_layers=1, layer="row-lstm")
        >>> model.log_prob_per_dim(model.sample(2)).shape
        torch.Size([2, 12])
    """

    name = "pixelrnn"

    def __init__(
        self,
        image_shape: Sequence[int],
        likelihood: str = "bernoulli",
        num_levels: int | None = None,
        num_components: int = 5,
        hidden_channels: int = 96,
        num_layers: int = 2,
        layer: str = "diagonal-bilstm",
        kernel_size: int = 3,
        row_kernel_size: int = 3,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.likelihood = likelihood
        self.num_levels = num_levels
        self.num_components = num_components
        self.hidden_channels = hidden_channels
        self.num_layers = num_layers
        self.layer = layer
        self.kernel_size = kernel_size
        self.row_kernel_size = row_kernel_size
        self.dropout = dropout
        chw = _check_image_shape(self.image_shape)
        self.num_dims = math.prod(chw)
        _check_recurrence(chw[0], hidden_channels, layer, row_kernel_size)
        _check_network(chw[0], hidden_channels, num_layers, kernel_size, dropout)
        head = self._build_head()
        self.net = PixelRNNNet(
            chw, head, hidden_channels, num_layers, kernel_size, layer, row_kernel_size, dropout
        )


def _check_recurrence(channels: int, hidden: int, layer: str, row_kernel: int) -> None:
    if layer not in LAYERS:
        raise ModelError(f"unknown PixelRNN layer {layer!r}: use one of {', '.join(LAYERS)}")
    if hidden < 2 * channels:
        raise ModelError(
            f"hidden_channels must be >= 2 x the {channels} image channels (the LSTM state has "
            f"hidden_channels // 2 channels, one group per image channel), got {hidden}"
        )
    if row_kernel < 1 or row_kernel % 2 == 0:
        raise ModelError(f"row_kernel_size must be odd and >= 1, got {row_kernel}")
