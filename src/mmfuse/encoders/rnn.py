"""A bidirectional GRU over padded sequences, read only up to each sequence's length.

Training uses packed sequences (padding never enters the recurrence). Packing
needs the lengths as Python numbers, which `torch.export` cannot trace, so
while exporting the same computation is written with fixed shapes: the
forward direction runs over the padded batch and is read at the last real
step; the backward direction runs over each sequence reversed within its
length. The two give the same numbers (checked by `mmfuse export`).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


def run_gru(
    gru: nn.GRU, x: torch.Tensor, mask: torch.Tensor, outputs: bool = True
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """(per-step outputs (B, T, dirs*H), zero after each length, or None; final states (dirs, B, H)).

    x: (B, T, d) left-aligned steps; mask: (B, T) bool. An empty sequence reads one step.
    """
    lengths = mask.sum(1).clamp_min(1)
    if torch.compiler.is_exporting():
        return _run_unpacked(gru, x, lengths, outputs)
    packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    out, h_n = gru(packed)
    if not outputs:
        return None, h_n
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    return out, h_n


def _direction(gru: nn.GRU, x: torch.Tensor, suffix: str) -> torch.Tensor:
    """All per-step states of one direction's weights run forward over x: (B, T, H)."""
    if gru.num_layers != 1:
        raise NotImplementedError("exporting a GRU encoder supports one layer")
    names = ["weight_ih_l0", "weight_hh_l0"] + (["bias_ih_l0", "bias_hh_l0"] if gru.bias else [])
    weights = [getattr(gru, n + suffix) for n in names]
    h0 = x.new_zeros((1, x.shape[0], gru.hidden_size))
    out, _ = torch._VF.gru(x, h0, weights, gru.bias, 1, 0.0, False, False, True)
    return out


def _run_unpacked(gru: nn.GRU, x: torch.Tensor, lengths: torch.Tensor, outputs: bool):
    steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)  # (1, T)
    last = (lengths - 1).view(-1, 1, 1).expand(-1, 1, gru.hidden_size)
    valid = (steps < lengths.unsqueeze(1)).unsqueeze(-1)
    out_f = _direction(gru, x, "")
    finals, outs = [out_f.gather(1, last).squeeze(1)], [out_f]
    if gru.bidirectional:
        # position t < length reads step length-1-t; padding stays where it is (the map is its own inverse)
        flip = torch.where(steps < lengths.unsqueeze(1), lengths.unsqueeze(1) - 1 - steps, steps)
        reversed_x = x.gather(1, flip.unsqueeze(-1).expand_as(x))
        out_b = _direction(gru, reversed_x, "_reverse")
        finals.append(out_b.gather(1, last).squeeze(1))
        outs.append(out_b.gather(1, flip.unsqueeze(-1).expand_as(out_b)))
    h_n = torch.stack(finals)
    if not outputs:
        return None, h_n
    return torch.cat(outs, -1) * valid.to(x.dtype), h_n
