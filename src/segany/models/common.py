"""Small building blocks shared by the encoders and the mask decoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel dimension of a BxCxHxW tensor.

    Arguments:
      num_channels (int): C, the size of the normalised dimension.
      eps (float): added to the variance for numerical stability.
    """

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """BxCxHxW -> BxCxHxW, each pixel's channel vector normalised.

        In eval mode the official operation order (so fp32 results agree to the bit); in
        train mode one fused ``layer_norm`` over channels-last memory (faster, equal to
        rounding).
        """
        if self.training:
            channels_last = x.permute(0, 2, 3, 1)
            out = F.layer_norm(channels_last, (x.shape[1],), self.weight, self.bias, self.eps)
            return out.permute(0, 3, 1, 2)
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class MLPBlock(nn.Module):
    """Two linear layers with an activation between them: C -> mlp_dim -> C."""

    def __init__(self, embedding_dim: int, mlp_dim: int, act: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.lin1 = nn.Linear(embedding_dim, mlp_dim)
        self.lin2 = nn.Linear(mlp_dim, embedding_dim)
        self.act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """...xC -> ...xC."""
        return self.lin2(self.act(self.lin1(x)))


class MLP(nn.Module):
    """A stack of linear layers with ReLU between them (the decoder's heads).

    Arguments:
      input_dim (int): size of the input features.
      hidden_dim (int): size of every hidden layer.
      output_dim (int): size of the output.
      num_layers (int): number of linear layers (>= 1).
      sigmoid_output (bool): apply a sigmoid to the output.
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int,
        output_dim: int,
        num_layers: int,
        sigmoid_output: bool = False,
    ) -> None:
        super().__init__()
        dims_in = [input_dim] + [hidden_dim] * (num_layers - 1)
        dims_out = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims_in, dims_out, strict=True))
        self.sigmoid_output = sigmoid_output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """...x input_dim -> ...x output_dim."""
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < last:
                x = torch.relu(x)
        return torch.sigmoid(x) if self.sigmoid_output else x
