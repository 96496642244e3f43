"""Every fusion strategy against the fusion contract, for 2, 3 and 4 modalities.

Fusions are built as FusionModule builds them: cls(in_dims=..., **kwargs),
plus num_classes for strategies that produce logits. The contract's checks live in
mmfuse.fusion.conformance, which `mmfuse check` runs on a user's strategy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import pytest
import torch
from hydra.utils import get_class
from omegaconf import OmegaConf
from torch import nn

from mmfuse.configs import config_dir
from mmfuse.fusion.attention import AttentionFusion
from mmfuse.fusion.concat import ConcatFusion
from mmfuse.fusion.conformance import (
    NUM_CLASSES,
    WIDTHS,
    check_absent_modalities,
    check_deterministic,
    check_exportable,
    check_gradients,
    check_output,
    make_inputs,
    present_mask,
    run,
)
from mmfuse.fusion.early import EarlyFusion
from mmfuse.fusion.film import FiLM
from mmfuse.fusion.gated import GatedMultimodalUnit
from mmfuse.fusion.late import LateFusion
from mmfuse.fusion.lowrank import LowRankTensorFusion
from mmfuse.fusion.mi import MultiplicativeInteraction
from mmfuse.fusion.tensor import TensorFusion
from mmfuse.fusion.transformer import TransformerFusion

FUSION_CONF = config_dir() / "fusion"


def linear(a: int, b: int) -> int:
    return (a + 1) * b


def transformer_params(d: dict[str, int], d_model: int, depth: int, ff_mult: int, cls: bool) -> int:
    f = ff_mult * d_model
    layer = 4 * d_model * d_model + 4 * d_model + 2 * d_model * f + f + d_model + 4 * d_model
    return sum(linear(w, d_model) for w in d.values()) + len(d) * d_model + cls * d_model + depth * layer


@dataclass
class Case:
    """A strategy with its arguments, and its documented out_dim and parameter count as functions of in_dims."""

    id: str
    cls: type
    kwargs: Callable[[list[str]], dict] = field(default=lambda mods: {})
    out_dim: Callable[[dict[str, int]], int] = field(default=lambda d: 0)
    params: Callable[[dict[str, int]], int] = field(default=lambda d: 0)


def _others(d: dict[str, int], skip: str) -> int:
    return sum(w for m, w in d.items() if m != skip)


def _last(d: dict[str, int]) -> str:
    return list(d)[-1]


def mi_matrix_params(d: dict[str, int], context: str, out: int) -> int:
    d_c, d_x = d[context], _others(d, context)
    return linear(d_x, out) + d_c * d_x * out + d_c * out


def late_case(rule: str) -> Case:
    def kwargs(mods):
        return {
            "combine": rule,
            **({"weights": {m: i + 1.0 for i, m in enumerate(mods)}} if rule == "weighted" else {}),
        }

    def params(d):
        heads = sum(linear(w, NUM_CLASSES) for w in d.values())
        return heads + {"learned": len(d), "stacking": linear(len(d) * NUM_CLASSES, NUM_CLASSES)}.get(rule, 0)

    return Case(f"late-{rule}", LateFusion, kwargs, lambda d: NUM_CLASSES, params)


def transformer_case(variant: str, kw: dict) -> Case:
    return Case(
        f"transformer-{variant}",
        TransformerFusion,
        lambda mods: {"d_model": 8, "depth": 1, "heads": 2, **kw},
        lambda d: 8 * len(d) if kw.get("readout", "concat") == "concat" else 8,
        lambda d: transformer_params(d, 8, 1, 2, kw.get("readout", "concat") == "cls"),
    )


CASES = [
    Case("concat", ConcatFusion, out_dim=lambda d: sum(d.values()), params=lambda d: sum(d.values())),
    Case(
        "early",
        EarlyFusion,
        lambda mods: {"hidden": (16, 8)},
        lambda d: 8,
        lambda d: 2 * sum(d.values()) + linear(sum(d.values()) + len(d), 16) + linear(16, 8),
    ),
    *[late_case(rule) for rule in ("mean", "weighted", "learned", "stacking")],
    # one interaction gate per order 2..M: len(d) - 1 parameters
    *[
        Case(
            f"tensor{suffix}",
            TensorFusion,
            lambda mods, a=init: {"proj_dim": 4, "interaction_init": a},
            lambda d: sum(d.values()) + 5 ** len(d),
            lambda d: sum(linear(w, 4) for w in d.values()) + len(d) - 1,
        )
        for suffix, init in (("", 0.0), ("-published", 1.0))
    ],
    Case(
        "tensor-noproj",
        TensorFusion,
        lambda mods: {"proj_dim": None},
        lambda d: math.prod(w + 1 for w in d.values()),
        lambda d: len(d) - 1,
    ),
    *[
        Case(
            f"lowrank{suffix}",
            LowRankTensorFusion,
            lambda mods, a=init: {"rank": 3, "out_dim": 10, "interaction_init": a},
            lambda d: 10,
            lambda d: 3 * sum((w + 1) * 10 for w in d.values()) + 3 + 10 + len(d) - 1,
        )
        for suffix, init in (("", 0.0), ("-published", 1.0))
    ],
    Case(
        "mi-matrix",
        MultiplicativeInteraction,
        lambda mods: {"form": "matrix", "out_dim": 10},
        lambda d: 10,
        lambda d: mi_matrix_params(d, _last(d), 10),
    ),
    Case(
        "mi-vector",
        MultiplicativeInteraction,
        lambda mods: {"form": "vector"},
        lambda d: _others(d, _last(d)),
        lambda d: 2 * linear(d[_last(d)], _others(d, _last(d))),
    ),
    Case(
        "mi-scalar",
        MultiplicativeInteraction,
        lambda mods: {"form": "scalar"},
        lambda d: _others(d, _last(d)),
        lambda d: linear(d[_last(d)], 1) + linear(d[_last(d)], _others(d, _last(d))),
    ),
    Case(
        "mi-first-context",
        MultiplicativeInteraction,
        lambda mods: {"form": "matrix", "context": mods[0], "out_dim": 10},
        lambda d: 10,
        lambda d: mi_matrix_params(d, list(d)[0], 10),
    ),
    Case(
        "gated",
        GatedMultimodalUnit,
        lambda mods: {"out_dim": 10},
        lambda d: 10,
        lambda d: sum(linear(w, 10) for w in d.values()) + linear(sum(d.values()), len(d) * 10),
    ),
    Case(
        "film",
        FiLM,
        lambda mods: {"out_dim": 10},
        lambda d: 10,
        lambda d: sum(linear(w, 10) for m, w in d.items() if m != _last(d)) + linear(d[_last(d)], 20),
    ),
    Case(
        "film-first-conditioner",
        FiLM,
        lambda mods: {"out_dim": 10, "conditioner": mods[0]},
        lambda d: 10,
        lambda d: sum(linear(w, 10) for w in list(d.values())[1:]) + linear(list(d.values())[0], 20),
    ),
    Case(
        "attention",
        AttentionFusion,
        lambda mods: {"out_dim": 10, "hidden": 6},
        lambda d: 10,
        lambda d: sum(linear(w, 10) for w in d.values()) + linear(10, 6) + 6,
    ),
    *[
        transformer_case(variant, kw)
        for variant, kw in [
            ("concat", {}),
            ("cls", {"readout": "cls"}),
            ("mean", {"readout": "mean"}),
            ("pooled", {"pooled_tokens": True}),
        ]
    ],
]
NEEDS_TWO = [c for c in CASES if c.cls.min_modalities >= 2]
MODALITY_SETS = [list(WIDTHS)[:n] for n in (2, 3, 4)]


def build(case: Case, modalities: list[str]) -> nn.Module:
    kwargs = case.kwargs(modalities)
    if case.cls.produces_logits:
        kwargs["num_classes"] = NUM_CLASSES
    return case.cls(in_dims={m: WIDTHS[m] for m in modalities}, **kwargs)


def dims(modalities: list[str]) -> dict[str, int]:
    return {m: WIDTHS[m] for m in modalities}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # these tensors are tiny: thread hand-offs would cost more than they save
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=MODALITY_SETS, ids=lambda mods: f"{len(mods)}mod")
def modalities(request):
    return request.param


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_output_shape_and_documented_sizes(case, modalities):
    torch.manual_seed(0)
    fusion = build(case, modalities)
    check_output(fusion, dims(modalities))
    assert fusion.out_dim == case.out_dim(dims(modalities))
    assert sum(p.numel() for p in fusion.parameters()) == case.params(dims(modalities))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_every_parameter_gets_a_gradient(case, modalities):
    torch.manual_seed(0)
    check_gradients(build(case, modalities), dims(modalities))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_absent_modality_inputs_do_not_reach_the_output(case, modalities):
    torch.manual_seed(0)
    check_absent_modalities(build(case, modalities), dims(modalities))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_deterministic_for_a_seed(case, modalities):
    check_deterministic(lambda in_dims: build(case, list(in_dims)), dims(modalities))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_exportable(case):
    # one modality set: tracing costs about half a second a strategy
    torch.manual_seed(0)
    check_exportable(build(case, MODALITY_SETS[0]), dims(MODALITY_SETS[0]))


@pytest.mark.parametrize("case", NEEDS_TWO, ids=lambda c: c.id)
def test_one_modality_is_refused_by_name(case):
    with pytest.raises(ValueError) as err:
        build(case, ["image"])
    assert case.cls.__name__ in str(err.value) and "['image']" in str(err.value)


@pytest.mark.parametrize("case", [c for c in CASES if c.cls.min_modalities < 2], ids=lambda c: c.id)
def test_one_modality_strategies_accept_one(case):
    fusion = build(case, ["image"])
    present = torch.tensor([[True], [False]])
    feats, tokens = make_inputs(dims(["image"]), present)
    assert run(fusion, feats, present, tokens).shape == (2, fusion.out_dim)


def test_oversized_tensor_fusion_is_refused_before_allocating(monkeypatch):
    def no_layers(*args, **kwargs):
        raise AssertionError("a layer was built before the size check")

    monkeypatch.setattr(nn.Linear, "__init__", no_layers)
    in_dims = {m: 512 for m in WIDTHS}
    with pytest.raises(ValueError, match="lowrank") as err:
        TensorFusion(in_dims=in_dims, proj_dim=None)
    assert "fusion=tensor" in str(err.value) and str(f"{513**4:,}") in str(err.value) and "proj_dim" in str(err.value)
    with pytest.raises(ValueError, match="lowrank"):
        TensorFusion(in_dims=in_dims, proj_dim=4096)


def test_lowrank_factors_are_registered_parameters():
    fusion = LowRankTensorFusion(in_dims={m: WIDTHS[m] for m in WIDTHS}, rank=3, out_dim=10)
    names = dict(fusion.named_parameters())
    for m, d in WIDTHS.items():
        assert names[f"factors.{m}"].shape == (3, d + 1, 10)
    assert names["rank_weights"].shape == (1, 3) and names["bias"].shape == (1, 10)
    assert names["gates.weight"].shape == (len(WIDTHS) - 1,)


# --- tensor and lowrank: interactions phased in from interaction_init --------------------------------
PRODUCT_FUSIONS = {
    "tensor": lambda d, a: TensorFusion(in_dims=d, proj_dim=4, interaction_init=a),
    "tensor-noproj": lambda d, a: TensorFusion(in_dims=d, proj_dim=None, interaction_init=a),
    "lowrank": lambda d, a: LowRankTensorFusion(in_dims=d, rank=3, out_dim=10, interaction_init=a),
}


def mixed_difference(fusion: nn.Module, feats: dict, other: dict, i: str, j: str) -> torch.Tensor:
    """f(x) - f(x with i swapped) - f(x with j swapped) + f(x with both swapped): 0 for every input exactly
    when no term of f multiplies modality i with modality j."""
    present = torch.ones(len(feats[i]), len(feats), dtype=torch.bool)

    def f(*swapped):
        return fusion({m: other[m] if m in swapped else x for m, x in feats.items()}, present)

    return f() - f(i) - f(j) + f(i, j)


@pytest.mark.parametrize("name", PRODUCT_FUSIONS)
@pytest.mark.parametrize("n", [2, 3])
def test_product_fusions_start_additive_and_interact_once_the_gates_open(name, n):
    in_dims = {m: WIDTHS[m] for m in list(WIDTHS)[:n]}
    feats, _ = make_inputs(in_dims, present_mask(n))
    other, _ = make_inputs(in_dims, present_mask(n), seed=1)
    torch.manual_seed(0)
    fusion = PRODUCT_FUSIONS[name](in_dims, 0.0)
    with torch.no_grad():
        for i, j in [(a, b) for a in in_dims for b in in_dims if a < b]:
            assert mixed_difference(fusion, feats, other, i, j).abs().max() < 1e-5, f"{name}: {i} x {j} at init"
        fusion.gates.weight.fill_(0.5)
        assert mixed_difference(fusion, feats, other, *list(in_dims)[:2]).abs().max() > 1e-2


def test_tensor_fusion_with_open_gates_is_the_published_tfn():
    in_dims = {m: WIDTHS[m] for m in ("image", "text", "audio")}
    present = present_mask(3)
    feats, _ = make_inputs(in_dims, present)
    fusion = TensorFusion(in_dims=in_dims, proj_dim=4, interaction_init=1.0)
    with torch.no_grad():
        z = fusion(feats, present)
        ones = torch.ones(len(present), 1)
        ext = {
            m: torch.cat([fusion.project[m](x) * present[:, i : i + 1], ones], 1)
            for i, (m, x) in enumerate(feats.items())
        }
        tfn = torch.einsum("bi,bj,bk->bijk", *ext.values()).flatten(1)
    embeddings = torch.cat([x * present[:, i : i + 1] for i, x in enumerate(feats.values())], 1)
    torch.testing.assert_close(z, torch.cat([embeddings, tfn], 1))


def test_lowrank_fusion_with_open_gates_is_the_published_lmf_less_its_constant_term():
    in_dims = {m: WIDTHS[m] for m in ("image", "text", "audio")}
    present = present_mask(3)
    feats, _ = make_inputs(in_dims, present)
    fusion = LowRankTensorFusion(in_dims=in_dims, rank=3, out_dim=10, interaction_init=1.0)
    with torch.no_grad():
        for factor in fusion.factors.values():
            factor.normal_()  # the constant rows too, which start at 1
        z = fusion(feats, present)
        ones = torch.ones(len(present), 1)
        ext = {m: torch.cat([x * present[:, i : i + 1], ones], 1) for i, (m, x) in enumerate(feats.items())}
        product = math.prod(torch.einsum("bd,rdo->bro", ext[m], fusion.factors[m]) for m in in_dims)
        lmf = (fusion.rank_weights.view(1, 3, 1) * product).sum(1) + fusion.bias
        # the order-0 term, prod_m c_m, weighs no input: LMF's own bias absorbs it
        order0 = (fusion.rank_weights.view(3, 1) * math.prod(f[:, -1] for f in fusion.factors.values())).sum(0)
    assert order0.abs().min() > 1e-3  # so the check below could fail if forward kept the term
    torch.testing.assert_close(z, lmf - order0)


@pytest.mark.parametrize("name", PRODUCT_FUSIONS)
def test_gates_open_when_the_target_is_a_product(name):
    """From 0, the gate learns the interaction a multiplicative target needs; an additive model cannot fit it."""
    torch.manual_seed(0)
    in_dims = {"image": 3, "text": 3}
    x = {m: torch.randn(512, d) for m, d in in_dims.items()}
    y = x["image"][:, :1] * x["text"][:, :1]
    present = torch.ones(512, 2, dtype=torch.bool)
    fusion = PRODUCT_FUSIONS[name](in_dims, 0.0)
    readout = nn.Linear(fusion.out_dim, 1)
    opt = torch.optim.Adam([*fusion.parameters(), *readout.parameters()], lr=0.01)
    for _ in range(300):
        loss = nn.functional.mse_loss(readout(fusion(x, present)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2 * y.var().item(), f"{name}: MSE {loss.item():.3f}, variance {y.var().item():.3f}"
    assert fusion.gates.weight.abs().item() > 0.1


@pytest.mark.parametrize("cls, arg", [(MultiplicativeInteraction, "context"), (FiLM, "conditioner")])
def test_unknown_context_modality_is_refused(cls, arg):
    with pytest.raises(ValueError, match=f"fusion.{arg}='video'"):
        cls(in_dims={"image": 8, "text": 6}, **{arg: "video"})


def test_mi_rejects_an_unknown_form():
    with pytest.raises(ValueError, match="matrix"):
        MultiplicativeInteraction(in_dims={"image": 8, "text": 6}, form="diagonal")


def test_gated_unit_with_two_modalities_is_the_sigmoid_gmu():
    torch.manual_seed(0)
    fusion = GatedMultimodalUnit(in_dims={"image": 8, "text": 6}, out_dim=5)
    x = {"image": torch.randn(4, 8), "text": torch.randn(4, 6)}
    logits = fusion.gate(torch.cat([x["image"], x["text"]], -1)).view(4, 2, 5)
    s = torch.sigmoid(logits[:, 0] - logits[:, 1])
    h_image, h_text = (
        torch.tanh(fusion.transforms["image"](x["image"])),
        torch.tanh(fusion.transforms["text"](x["text"])),
    )
    expected = s * h_image + (1 - s) * h_text
    torch.testing.assert_close(fusion(x, torch.ones(4, 2, dtype=torch.bool)), expected)


def test_film_starts_as_identity_modulation():
    torch.manual_seed(0)
    fusion = FiLM(in_dims={"image": 8, "text": 6, "audio": 5}, out_dim=4)
    x = {m: torch.randn(3, d) for m, d in {"image": 8, "text": 6, "audio": 5}.items()}
    expected = (fusion.project["image"](x["image"]) + fusion.project["text"](x["text"])) / 2
    torch.testing.assert_close(fusion(x, torch.ones(3, 3, dtype=torch.bool)), expected)


@pytest.mark.parametrize("readout", ["concat", "cls", "mean"])
def test_transformer_ignores_padding_and_survives_fully_masked_samples(readout):
    torch.manual_seed(0)
    modalities = ["image", "text"]
    fusion = TransformerFusion(
        in_dims={m: WIDTHS[m] for m in modalities}, d_model=8, depth=1, heads=2, readout=readout
    ).eval()
    present = torch.tensor([[True, True], [True, False], [False, True]])
    feats, tokens = make_inputs(dims(modalities), present)
    tokens["text"][1][2] = False  # sample 2's only present modality has no valid token (its summary token remains)
    with torch.no_grad():
        out = fusion(feats, present, tokens=tokens)
        padded = {m: (torch.where(mask[..., None], tok, tok + 100.0), mask) for m, (tok, mask) in tokens.items()}
        out_padded = fusion(feats, present, tokens=padded)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out_padded, out, rtol=0, atol=1e-5)
    if readout == "concat":  # an absent modality's slot is zero
        assert torch.equal(out[1, 8:], torch.zeros(8)) and torch.equal(out[2, :8], torch.zeros(8))


def test_transformer_pooled_mode_does_not_ask_for_tokens():
    fusion = TransformerFusion(in_dims={"image": 8, "text": 6}, d_model=8, heads=2, pooled_tokens=True)
    assert not fusion.wants_tokens and TransformerFusion.wants_tokens


@pytest.mark.parametrize(
    "conf", sorted(p.stem for p in FUSION_CONF.glob("*.yaml") if not p.stem.startswith("unimodal"))
)
def test_each_fusion_yaml_builds_with_its_defaults(conf):
    cfg = OmegaConf.to_container(OmegaConf.load(FUSION_CONF / f"{conf}.yaml"))
    assert cfg.pop("name") == conf
    cls = get_class(cfg.pop("_target_"))
    if cls.produces_logits:
        cfg["num_classes"] = NUM_CLASSES
    fusion = cls(in_dims=dict(WIDTHS), **cfg)
    present = present_mask(len(WIDTHS))
    feats, tokens = make_inputs(dict(WIDTHS), present)
    assert run(fusion, feats, present, tokens).shape == (len(present), fusion.out_dim)
