"""CPC with past-only augmentation (Kharitonov et al., 2021): the context reads the augmented crop, the latents
it must pick out (and the negatives) are the clean crop's."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from audioemb.nn.encoders import build_encoder  # noqa: E402
from audioemb.nn.frontend import LogMel, LogMelConfig  # noqa: E402
from audioemb.nn.views import Views  # noqa: E402
from audioemb.objectives import base as objective_base  # noqa: E402
from audioemb.objectives import cpc as cpc_module  # noqa: E402

TINY = {"type": "framenet", "dim": 32, "layers": 1, "heads": 2, "ff": 64, "channels": 16}
PLAIN_VIEWS = {"mixup": 0.0, "gain_db": 0.0}


def _step(monkeypatch, obj, module, loss: str) -> tuple[tuple, torch.Tensor]:
    """One training step of ``obj`` with views that add 1 (a deterministic "augmentation", to tell the two
    inputs apart) and ``module.<loss>`` replaced by a recorder: the loss's first two arguments, and the clean
    log-mels of the batch."""
    obj.views = lambda x: x + 1.0
    seen = []

    def capture(first, second, *_a, **_k):
        seen.extend([first, second])
        return first.sum() * 0

    monkeypatch.setattr(module, loss, capture)
    wav = torch.randn(3, 1, 16000) * 0.1
    obj.training_step(objective_base.Batch(wav, 0, np.arange(3)))
    with torch.no_grad():
        return tuple(seen), obj.logmels(wav)[:, 0]


@pytest.mark.parametrize("augment_past", [False, True])
def test_context_reads_the_views_and_targets_are_clean_only_when_asked(monkeypatch, augment_past):
    torch.manual_seed(0)
    enc = build_encoder({**TINY, "context": "gru", "causal": True})
    obj = cpc_module.CPC(enc, LogMel(LogMelConfig()), Views(PLAIN_VIEWS), steps=2, negatives=4,
                         augment_past=augment_past).eval()
    (context, latents), clean = _step(monkeypatch, obj, cpc_module, "cpc_loss")
    with torch.no_grad():
        aug_z = enc.local_features(clean + 1.0)
        want_latents = enc.local_features(clean) if augment_past else aug_z
        torch.testing.assert_close(context, enc.contextualize(aug_z)[-1])
        torch.testing.assert_close(latents, want_latents)
        assert not torch.allclose(enc.local_features(clean), aug_z)  # the two inputs do differ


@pytest.mark.parametrize("augment_context", [False, True])
def test_wav2vec2_targets_are_clean_only_when_asked(monkeypatch, augment_context):
    from audioemb.objectives import wav2vec2 as w2v_module

    torch.manual_seed(0)
    enc = build_encoder(TINY)
    obj = w2v_module.Wav2Vec2(enc, LogMel(LogMelConfig()), Views(PLAIN_VIEWS), proj_dim=16, distractors=4,
                              augment_context=augment_context).eval()
    (_, targets), clean = _step(monkeypatch, obj, w2v_module, "masked_contrastive_loss")
    with torch.no_grad():
        src = clean if augment_context else clean + 1.0
        torch.testing.assert_close(targets, obj.project_q(enc.local_features(src)).float())
