"""Per-modality encoders: `forward(x, mask=None) -> (B, out_dim)`.

Encoders that keep a sequence (image feature maps, token sequences) also
implement `tokens(x, mask=None) -> (tokens (B, T, out_dim), token_mask (B, T))`
for attention-style fusion.
"""
