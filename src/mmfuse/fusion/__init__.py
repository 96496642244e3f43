"""Fusion strategies: one small nn.Module per strategy (see docs/FUSION.md).

Each takes plain widths, `in_dims: dict[str, int]` keyed by modality, and
implements `forward(feats, present) -> (B, out_dim)` where `feats` maps each
modality to its (B, in_dims[m]) embedding and `present` is the (B, M) bool
mask in the order of `in_dims`.
"""
