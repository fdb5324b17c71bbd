"""A tiny transformer language model, split into pipeline stages and tensor-parallel blocks."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.head_dim = dim // heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim, bias=False) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        # under tensor parallelism q/k/v hold this rank's heads only: infer how many from the width
        q, k, v = (t.view(b, s, -1, self.head_dim).transpose(1, 2) for t in (self.q(x), self.k(x), self.v(x)))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o(y.transpose(1, 2).reshape(b, s, -1))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class Stage(nn.Module):
    """Layers ``layers`` of the model; the first stage embeds, the last one predicts.

    Every rank builds the same full model from one seed and keeps its stage's part, so the
    initial weights do not depend on the split; parameter names use the global layer index,
    so a checkpoint maps onto any pipeline split.
    """

    def __init__(self, vocab: int, dim: int, heads: int, n_layers: int, layers: range, seq: int, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        embed, pos = nn.Embedding(vocab, dim), nn.Parameter(0.02 * torch.randn(seq, dim))
        blocks = [Block(dim, heads) for _ in range(n_layers)]
        norm, head = nn.LayerNorm(dim), nn.Linear(dim, vocab)
        first, last = layers.start == 0, layers.stop == n_layers
        self.embed, self.pos = (embed, pos) if first else (None, None)
        self.blocks = nn.ModuleDict({str(i): blocks[i] for i in layers})
        self.norm, self.head = (norm, head) if last else (None, None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.embed is not None:
            x = self.embed(x) + self.pos[: x.shape[1]]
        for block in self.blocks.values():
            x = block(x)
        if self.head is not None:  # bias added out of place: nn.Linear on a 3-D input returns a view (FSDP2 warns)
            x = F.linear(self.norm(x), self.head.weight) + self.head.bias
        return x


def stage_layers(n_layers: int, pp: int, stage: int) -> range:
    per = -(-n_layers // pp)
    return range(stage * per, min(n_layers, (stage + 1) * per))


def tensor_parallel_plan() -> dict:
    """Megatron-style: q/k/v and fc1 split by columns, o and fc2 by rows."""
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel

    col, row = ColwiseParallel(), RowwiseParallel()
    return {"attn.q": col, "attn.k": col, "attn.v": col, "attn.o": row, "fc1": col, "fc2": row}


def batch(step: int, dp_rank: int, size: int, seq: int, vocab: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Generated token data for one update: counting sequences with noise, different per dp rank."""
    g = torch.Generator().manual_seed(1_000_003 * step + dp_rank)
    start = torch.randint(0, vocab, (size, 1), generator=g)
    tokens = (start + torch.arange(seq + 1)) % vocab
    noise = torch.rand(tokens.shape, generator=g) < 0.1
    tokens = torch.where(noise, torch.randint(0, vocab, tokens.shape, generator=g), tokens)
    return tokens[:, :-1], tokens[:, 1:]
