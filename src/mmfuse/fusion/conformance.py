"""The checks every fusion strategy passes: mmfuse's own (tests/test_fusion_zoo.py) and a user's (`mmfuse check`).

A strategy is given as a factory `in_dims -> nn.Module` (the FusionModule builds it as `cls(in_dims=..., **kwargs)`)
and checked on generated embeddings for several modality sets:

- output shape: `forward(feats, present, tokens=None)` returns a finite `(B, out_dim)` tensor;
- gradient: every parameter receives a non-zero gradient (no factor left in a plain Python list), no trainable
  tensor hides outside the module's registries, and an absent modality's input receives none;
- absent modalities: changing an absent modality's input changes nothing, while changing the present inputs does;
- determinism: the same seed builds the same module, which gives the same output;
- exportable: `torch.export` traces it, and the traced program gives the same output.

Each check raises `CheckFailed` with one line that says what is wrong; `run_checks` gathers them into a table.
"""
from __future__ import annotations

import inspect
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from mmfuse.fusion.base import trait

WIDTHS = {"image": 8, "text": 6, "audio": 5, "tabular": 7}  # embedding widths of the generated inputs
TOKEN_COUNTS = {"image": 4, "text": 5, "audio": 3, "tabular": 1}
DEFAULT_TOKENS = 3  # tokens of a modality not named above
NUM_CLASSES = 3     # for strategies that produce logits
Factory = Callable[[dict[str, int]], nn.Module]


class CheckFailed(AssertionError):
    """A strategy breaks the fusion contract; the message says how, in one line."""


def present_mask(m: int) -> torch.Tensor:
    """Rows: each modality missing alone, each present alone, all present, alternating ones. Never all missing."""
    rows = [[j != i for j in range(m)] for i in range(m)] + [[j == i for j in range(m)] for i in range(m)]
    rows += [[True] * m, [j % 2 == 0 for j in range(m)], [j % 2 == 1 for j in range(m)]]
    return torch.tensor(rows)


def token_mean(tok: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    w = mask.unsqueeze(-1).float()
    return (tok * w).sum(1) / w.sum(1).clamp_min(1.0)


def make_inputs(in_dims: dict[str, int], present: torch.Tensor, seed: int = 0):
    """feats {m: (B, d_m)} as masked token means, and tokens {m: ((B, T_m, d_m), (B, T_m) bool)}."""
    g = torch.Generator().manual_seed(seed)
    b = len(present)
    feats, tokens = {}, {}
    for m, width in in_dims.items():
        count = TOKEN_COUNTS.get(m, DEFAULT_TOKENS)
        tok = torch.randn(b, count, width, generator=g)
        mask = torch.rand(b, count, generator=g) > 0.3
        mask[:, 0] = True
        tokens[m] = (tok, mask)
        feats[m] = token_mean(tok, mask)
    return feats, tokens


def run(fusion: nn.Module, feats, present, tokens):
    """The call the FusionModule makes: tokens only for a strategy that wants them."""
    return fusion(feats, present, tokens=tokens if trait(fusion, "wants_tokens") else None)


def stray_tensors(module: nn.Module) -> list[str]:
    """Trainable tensors hidden in plain Python containers, where the optimizer never sees them."""
    found = []
    for name, sub in module.named_modules():
        for attr, value in vars(sub).items():
            if attr.startswith("_"):  # nn.Module's own registries
                continue
            items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else []
            if any(isinstance(v, torch.Tensor) and v.requires_grad for v in items):
                found.append(f"{name}.{attr}" if name else attr)
    return found


def check_signature(fusion: Any) -> None:
    """`forward(feats, present, tokens=None)` is callable as the FusionModule calls it (a class or a module)."""
    forward = getattr(fusion, "forward", None)
    if forward is None:
        raise CheckFailed("it has no forward method")
    try:
        signature = inspect.signature(forward)
    except (TypeError, ValueError):
        return  # a builtin or C-level forward: nothing to read
    params = list(signature.parameters.values())
    if inspect.isclass(fusion) and params and params[0].name == "self":
        params = params[1:]  # unbound: the class's function
    try:
        signature.replace(parameters=params).bind({}, None, tokens=None)
    except TypeError as e:
        raise CheckFailed(f"forward{signature.replace(parameters=params)} cannot be called as "
                          f"forward(feats, present, tokens=None) ({e})") from None


def _out_dim(fusion: nn.Module) -> int:
    out_dim = getattr(fusion, "out_dim", None)
    if isinstance(out_dim, bool) or not isinstance(out_dim, int) or out_dim < 1:
        raise CheckFailed(f"out_dim is {out_dim!r}; set self.out_dim (a positive integer: the width forward returns)")
    return out_dim


def check_output(fusion: nn.Module, in_dims: dict[str, int]) -> None:
    check_signature(fusion)
    out_dim = _out_dim(fusion)
    present = present_mask(len(in_dims))
    feats, tokens = make_inputs(in_dims, present)
    with torch.no_grad():
        out = run(fusion.eval(), feats, present, tokens)
    if not isinstance(out, torch.Tensor):
        raise CheckFailed(f"forward returned {type(out).__name__}, not a tensor of shape (B, out_dim)")
    if tuple(out.shape) != (len(present), out_dim):
        raise CheckFailed(f"forward returned shape {tuple(out.shape)}; expected (B, out_dim) = "
                          f"{(len(present), out_dim)}")
    if not torch.isfinite(out).all():
        raise CheckFailed("forward returned non-finite values (NaN or inf) for finite inputs")


def check_gradients(fusion: nn.Module, in_dims: dict[str, int]) -> None:
    modalities = list(in_dims)
    fusion.train()
    present = present_mask(len(modalities))
    feats, tokens = make_inputs(in_dims, present)
    wants_tokens = trait(fusion, "wants_tokens")
    inputs = [tokens[m][0] if wants_tokens else feats[m] for m in modalities]
    for t in inputs:
        t.requires_grad_(True)
    out = run(fusion, feats, present, tokens)
    (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(0))).sum().backward()
    stray = stray_tensors(fusion)
    if stray:
        raise CheckFailed(f"trainable tensors in plain Python containers, never trained: {stray} "
                          "(use nn.Parameter in an nn.ParameterList / nn.ParameterDict)")
    missing = [name for name, p in fusion.named_parameters() if p.requires_grad and p.grad is None]
    if missing:
        raise CheckFailed(f"parameter(s) {missing} receive no gradient (unused in forward?)")
    zero = [name for name, p in fusion.named_parameters() if p.requires_grad and not p.grad.abs().sum() > 0]
    if zero:
        raise CheckFailed(f"parameter(s) {zero} receive a zero gradient")
    if not any(t.grad is not None and t.grad.abs().sum() > 0 for t in inputs):
        raise CheckFailed("no input receives a gradient: the encoders would never learn")
    for i, t in enumerate(inputs):
        if t.grad is not None and t.grad[~present[:, i]].abs().sum() > 0:
            raise CheckFailed(f"absent modality {modalities[i]!r} receives a gradient (its input is used where "
                              "present is False)")
    fusion.zero_grad(set_to_none=True)


def check_absent_modalities(fusion: nn.Module, in_dims: dict[str, int]) -> None:
    modalities = list(in_dims)
    fusion.eval()
    present = present_mask(len(modalities))
    feats, tokens = make_inputs(in_dims, present)
    other_feats, other_tokens = make_inputs(in_dims, present, seed=1)
    changed_feats, changed_tokens = {}, {}
    for i, m in enumerate(modalities):
        absent = ~present[:, i]
        tok = torch.where(absent[:, None, None], 10 * other_tokens[m][0] + 3, tokens[m][0])
        mask = torch.where(absent[:, None], other_tokens[m][1], tokens[m][1])
        changed_tokens[m] = (tok, mask)
        changed_feats[m] = torch.where(absent[:, None], 10 * other_feats[m] + 3, feats[m])
    with torch.no_grad():
        out = run(fusion, feats, present, tokens)
        out_changed = run(fusion, changed_feats, present, changed_tokens)
        out_all_new = run(fusion, other_feats, present, other_tokens)
    diff = (out_changed - out).abs().max().item() if out.numel() else 0.0
    if not diff <= 1e-5:
        rows = [i for i in range(len(out)) if not torch.allclose(out_changed[i], out[i], rtol=0, atol=1e-5)]
        absent = [[m for j, m in enumerate(modalities) if not present[r, j]] for r in rows[:3]]
        raise CheckFailed(f"changing absent modalities' inputs changes the output by up to {diff:.3g} "
                          f"(samples missing {absent}); mask them with `present`")
    if torch.allclose(out_all_new, out):
        raise CheckFailed("the output does not depend on its inputs, so the masking check proves nothing")


def check_deterministic(factory: Factory, in_dims: dict[str, int]) -> None:
    present = present_mask(len(in_dims))
    feats, tokens = make_inputs(in_dims, present)
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        fusion = factory(dict(in_dims)).eval()
        with torch.no_grad():
            outs.append(run(fusion, feats, present, tokens))
    if not torch.equal(outs[0], outs[1]):
        raise CheckFailed("two builds with the same seed give different outputs (unseeded randomness, or state "
                          "shared between instances?)")


class _AsInModel(nn.Module):
    """The strategy as `mmfuse export` meets it: a submodule called with the model's arguments."""

    def __init__(self, fusion: nn.Module):
        super().__init__()
        self.fusion = fusion

    def forward(self, feats, present, tokens=None):
        return self.fusion(feats, present, tokens=tokens)


def check_exportable(fusion: nn.Module, in_dims: dict[str, int]) -> None:
    """torch.export traces the module (as `mmfuse export` traces the whole model) and reproduces its output."""
    fusion.eval()
    present = present_mask(len(in_dims))
    feats, tokens = make_inputs(in_dims, present)
    kwargs = {"tokens": tokens if trait(fusion, "wants_tokens") else None}
    wrapped = _AsInModel(fusion).eval()
    disabled = logging.root.manager.disable
    logging.disable(logging.CRITICAL)  # a failed trace logs the whole graph; the one line below says enough
    try:
        program = torch.export.export(wrapped, (feats, present), kwargs=kwargs)
        with torch.no_grad():
            got = program.module()(feats, present, **kwargs)
    except Exception as e:  # noqa: BLE001 - torch.export's reasons are many; the first line names it
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise CheckFailed(f"torch.export cannot trace it: {type(e).__name__}: {first}") from None
    finally:
        logging.disable(disabled)
    with torch.no_grad():
        expected = wrapped(feats, present, **kwargs)
    if not torch.allclose(got, expected, atol=1e-5, rtol=1e-4):
        raise CheckFailed(f"the exported program differs from the module by {(got - expected).abs().max().item():.3g}")


# --- a table of results ---------------------------------------------------------------------------------------

@dataclass
class Result:
    check: str
    modalities: tuple[str, ...]
    passed: bool
    message: str = ""
    seconds: float = 0.0


def _on_fresh(check: Callable[[nn.Module, dict[str, int]], None]) -> Callable[[Factory, dict[str, int]], None]:
    def run_on_fresh(factory: Factory, in_dims: dict[str, int]) -> None:
        torch.manual_seed(0)
        check(factory(dict(in_dims)), in_dims)
    return run_on_fresh


CHECKS: dict[str, Callable[[Factory, dict[str, int]], None]] = {
    "output shape": _on_fresh(check_output),
    "gradient reaches every parameter": _on_fresh(check_gradients),
    "absent modality changes nothing": _on_fresh(check_absent_modalities),
    "deterministic for a seed": check_deterministic,
    "exportable (torch.export)": _on_fresh(check_exportable),
}


def modality_sets(min_modalities: int = 2, max_modalities: int | None = None) -> list[dict[str, int]]:
    """The generated modality sets (2, 3 and 4 modalities, or 1 for strategies that take one) a strategy accepts."""
    names = list(WIDTHS)
    counts = [n for n in (1, 2, 3, 4)
              if n >= max(min_modalities, 1) and (max_modalities is None or n <= max_modalities)]
    if min_modalities <= 1 and 2 in counts:
        counts.remove(1)  # one modality is checked only for strategies limited to one
    return [{m: WIDTHS[m] for m in names[:n]} for n in counts]


def run_checks(factory: Factory, sets: list[dict[str, int]], checks: dict | None = None) -> list[Result]:
    """Every check on every modality set; a factory that cannot build for a set fails each check there."""
    results = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # these tensors are tiny: thread hand-offs would cost more than they save
    try:
        for in_dims in sets:
            mods = tuple(in_dims)
            try:
                torch.manual_seed(0)
                factory(dict(in_dims))
            except Exception as e:  # noqa: BLE001 - a constructor's own error, said in one line
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                results += [Result(name, mods, False, f"cannot build: {type(e).__name__}: {first}") for name in CHECKS]
                continue
            for name, check in (checks or CHECKS).items():
                started = time.perf_counter()
                try:
                    check(factory, in_dims)
                    results.append(Result(name, mods, True, seconds=time.perf_counter() - started))
                except CheckFailed as e:
                    results.append(Result(name, mods, False, str(e), time.perf_counter() - started))
                except Exception as e:  # noqa: BLE001 - the strategy itself raised
                    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                    results.append(Result(name, mods, False, f"{type(e).__name__}: {first}",
                                          time.perf_counter() - started))
    finally:
        torch.set_num_threads(threads)
    return results


def factory_for(cls: type, kwargs: dict[str, Any], num_classes: int = NUM_CLASSES) -> Factory:
    """Build as the FusionModule builds: `cls(in_dims=..., **kwargs)`, plus num_classes for logit producers."""
    def build(in_dims: dict[str, int]) -> nn.Module:
        extra = {"num_classes": num_classes} if trait(cls, "produces_logits") else {}
        return cls(in_dims=in_dims, **kwargs, **extra)
    return build
