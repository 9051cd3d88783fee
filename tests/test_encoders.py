"""Every registered encoder: shapes, finite outputs, gradients to every parameter, config round trip."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from audioemb.nn.encoders import ENCODERS, build_encoder  # noqa: E402
from audioemb.nn.model import AudioEmbedder  # noqa: E402

CONFIGS = [
    {"type": "audiontt", "channels": 8, "hidden": 32},
    {"type": "framenet", "dim": 32, "context": "transformer", "layers": 2, "heads": 2, "ff": 64, "channels": 16},
    {"type": "framenet", "dim": 32, "context": "transformer", "layers": 1, "heads": 2, "ff": 64, "channels": 16,
     "causal": True},
    {"type": "framenet", "dim": 32, "context": "gru", "layers": 2, "causal": True, "channels": 16},
    {"type": "framenet", "dim": 32, "context": "none", "channels": 16},
    {"type": "framenet", "dim": 32, "context": "gru", "layers": 1, "causal": True, "channels": 16, "reverse": True},
    {"type": "npcnet", "dim": 16, "layers": 2},
    {"type": "concat", "parts": [
        {"type": "framenet", "dim": 16, "context": "gru", "layers": 1, "causal": True, "channels": 8},
        {"type": "framenet", "dim": 16, "context": "gru", "layers": 1, "causal": True, "channels": 8,
         "reverse": True}]},
    {"type": "audiontt", "channels": 8, "hidden": 32, "readout": "concat"},
    {"type": "audiontt", "channels": 8, "hidden": 32, "readout": "concat_fine"},
]


def test_every_registered_type_is_covered():
    assert {c["type"] for c in CONFIGS} == set(ENCODERS)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c['type']}-{c.get('context', '')}{c.get('causal', '')}")
def test_shapes_finite_and_gradients(cfg):
    torch.manual_seed(0)
    enc = build_encoder(cfg)
    x = torch.randn(3, 64, 101)
    layers = enc.hidden_states(x)
    assert len(layers) == enc.n_layers
    t = layers[-1].shape[1]
    assert t == 101 // enc.frame_hop
    for h in layers:
        assert h.shape == (3, t, enc.frame_dim) and torch.isfinite(h).all()
    emb = enc.pool(layers[-1])
    assert emb.shape == (3, enc.embedding_dim)
    (emb.square().sum() + sum(h.square().sum() for h in layers)).backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert build_encoder(enc.config()).config() == enc.config()


def test_causal_context_ignores_the_future():
    torch.manual_seed(0)
    for cfg in CONFIGS[2:4]:
        enc = build_encoder(cfg).eval()
        z = torch.randn(1, 20, 32)
        a = enc.contextualize(z)[-1]
        z2 = z.clone()
        z2[:, 12:] = torch.randn(1, 8, 32)
        b = enc.contextualize(z2)[-1]
        assert torch.allclose(a[:, :12], b[:, :12], atol=1e-5)
        assert not torch.allclose(a[:, 12:], b[:, 12:])


def test_unknown_encoder_type_refused():
    with pytest.raises(ValueError, match="unknown encoder type"):
        build_encoder({"type": "resnet9000"})


def test_embedder_min_samples_give_a_frame():
    for cfg in CONFIGS:
        m = AudioEmbedder.from_config({"type": "logmel"}, cfg).eval()
        e, f, h = m(torch.zeros(2, m.min_samples))
        assert f.shape[1] >= 1 and e.shape == (2, m.encoder.embedding_dim) and h.shape[0] == m.encoder.n_layers


@pytest.mark.parametrize("kernel,half_mask", [(7, 1), (11, 3), (15, 5), (3, 0)])
def test_masked_conv_equals_the_full_kernel_with_its_centre_zeroed(kernel, half_mask):
    """MaskedConv1d computes only the live taps; outputs and gradients match a plain conv of the masked kernel."""
    import torch.nn.functional as F

    from audioemb.nn.encoders.npcnet import MaskedConv1d

    torch.manual_seed(0)
    conv = MaskedConv1d(8, kernel, half_mask)
    mask = torch.ones(kernel)
    mask[kernel // 2 - half_mask:kernel // 2 + half_mask + 1] = 0
    x = torch.randn(3, 8, 23, requires_grad=True)
    got = conv(x)
    got.square().sum().backward()
    gw, gx = conv.weight.grad.clone(), x.grad.clone()
    conv.weight.grad, x.grad = None, None
    want = F.conv1d(x, conv.weight * mask, conv.bias, padding=kernel // 2)
    want.square().sum().backward()
    assert got.shape == want.shape == (3, 8, 23)
    assert torch.allclose(got, want, atol=1e-5)
    assert torch.allclose(gw, conv.weight.grad, atol=1e-4) and torch.allclose(gx, x.grad, atol=1e-4)
    assert gw[..., kernel // 2 - half_mask:kernel // 2 + half_mask + 1].abs().max() == 0  # masked taps never learn


def test_masked_conv_without_live_taps_is_refused():
    from audioemb.nn.encoders.npcnet import MaskedConv1d

    with pytest.raises(ValueError, match="no live taps"):
        MaskedConv1d(8, 5, 2)


@pytest.mark.parametrize("readout, rows", [("concat", 8), ("concat_fine", 32)])
def test_audiontt_concat_readouts_put_conv_features_beside_the_mlp(readout, rows):
    """``concat``: the third block's output; ``concat_fine``: the second block before its pooling, max-pooled
    over each frame's 4 time steps. Both are followed by the MLP layer's output, which the readout leaves as is."""
    torch.manual_seed(0)
    enc = build_encoder({"type": "audiontt", "channels": 8, "hidden": 32, "readout": readout}).eval()
    torch.manual_seed(0)
    mlp = build_encoder({"type": "audiontt", "channels": 8, "hidden": 32}).eval()
    x = torch.randn(2, 64, 97)
    seen = {}
    enc.features[1][2].register_forward_hook(lambda m, i, o: seen.setdefault("fine", o))
    enc.features[2].register_forward_hook(lambda m, i, o: seen.setdefault("last", o))
    layers = enc.hidden_states(x)
    t = 97 // 8
    assert enc.frame_dim == 32 + 8 * rows and layers[-1].shape == (2, t, enc.frame_dim)
    fmap = seen["last"] if readout == "concat" else seen["fine"][..., :4 * t].unflatten(-1, (t, 4)).amax(-1)
    assert fmap.shape[2] == rows
    for b in range(2):
        for j in range(t):  # frame j: channel-major, then frequency row
            torch.testing.assert_close(layers[-1][b, j, :8 * rows], fmap[b, :, :, j].reshape(-1))
    for own, ref in zip(layers, mlp.hidden_states(x)):
        torch.testing.assert_close(own[..., 8 * rows:], ref)


@pytest.mark.parametrize("reverse", [False, True])
def test_framenet_latents_readout_is_the_conv_latents_of_the_same_weights(reverse):
    """``readout="latents"``: the one layer is the context readout's layer 0 (``z``), in real time order; the
    weights are the same module tree, so a state dict loads strictly either way."""
    cfg = {"type": "framenet", "dim": 32, "layers": 2, "heads": 2, "ff": 64, "channels": 16, "reverse": reverse}
    torch.manual_seed(0)
    ctx = build_encoder(cfg).eval()
    lat = build_encoder({**cfg, "readout": "latents"}).eval()
    lat.load_state_dict(ctx.state_dict())  # strict
    x = torch.randn(2, 64, 101)
    layers = lat.hidden_states(x)
    assert lat.n_layers == len(layers) == 1 and ctx.n_layers == 3
    torch.testing.assert_close(layers[0], ctx.hidden_states(x)[0])
    assert lat.config()["readout"] == "latents" and "readout" not in ctx.config()
    assert build_encoder(lat.config()).config() == lat.config()
    with pytest.raises(ValueError, match="readout must be one of"):
        build_encoder({**cfg, "readout": "last"})
