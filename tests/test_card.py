"""Model cards say what the config records: sample rate, device and machine, data and its licences."""

from __future__ import annotations

import json

from audioemb.card import render_card


def _cfg(tiny_model, **training) -> dict:
    cfg = json.loads((tiny_model / "config.json").read_text())
    cfg["training"] = {"command": "audioemb train x", "steps": 10, "batch_size": 4, "crop_s": 1.0, **training}
    return cfg


def test_card_renders_sample_rate_device_and_recorded_licences(tiny_model):
    cfg = _cfg(tiny_model, env={"device": "cpu", "device_name": "Ampere Altra", "machine": "Ampere Altra, 64 cores",
                                "world_size": 1, "precision": "fp32"},
               data={"kind": "corpus", "corpus": "corpus-v2", "data_tag": "debian2", "recipe_version": 2,
                     "clips": 100, "hours": 1.5, "licences": [{"package": "freepats", "licence": "GPL-2+"}, "MIT (x)"]})
    cfg["sample_rate"] = cfg["frontend"]["sample_rate"] = 22050
    card = render_card(cfg)
    assert "22.05 kHz mono waveform" in card and "16 kHz" not in card
    assert "Trained on CPU (Ampere Altra, 64 cores), 1 process, fp32" in card
    assert "freepats (GPL-2+), MIT (x)." in card
    assert "no GPU" not in card and "hedgewars" not in card
    assert "_No corpus figures" in card  # the config holds no figures, and the card says so


def test_legacy_card_names_only_the_packages_the_config_lists(tiny_model):
    cfg = _cfg(tiny_model, hardware="x86_64, 2 CPU threads, bf16",
               data={"corpus": "audioemb Debian corpus", "recipe_version": 1, "train_clips": 5, "train_hours": 0.1,
                     "packages": {"hedgewars-data": "1.0.2-6", "oxygen-sounds": "5"}})
    card = render_card(cfg)
    assert "Trained on x86_64, 2 CPU threads, bf16" in card
    assert "hedgewars-data (GFDL-1.3), oxygen-sounds (free licence" in card
    assert "fillets" not in card and "sonic-pi" not in card


def test_card_of_own_folders_claims_no_licence(tiny_model):
    cfg = _cfg(tiny_model, data={"kind": "folders", "folders": ["field_recordings"], "files": 3, "clips": 3,
                                 "hours": 0.2, "file_list_sha256": "cd" * 32, "licences": []})
    card = render_card(cfg)
    assert "the folder `field_recordings`: 3 audio files" in card
    assert "audioemb records no licence" in card and "Debian" not in card and "Apache-2.0. Training audio" not in card


def test_card_says_when_a_run_trained_on_a_coded_subset():
    from audioemb.card import data_line
    from audioemb.model_config import DataRecord

    sub = {"fraction": 0.27, "seed": 0, "codec": "Ogg/Opus at about 11 kbit/s", "why": "it had to travel"}
    line = data_line(DataRecord.from_dict({"kind": "corpus", "corpus": "/tmp/corpus", "data_tag": "debian2",
                                           "clips": 10, "hours": 1.0, "subset": sub}), 16000)
    assert "a random 27% of the corpus's training clips (seed 0" in line and "Ogg/Opus at about 11 kbit/s" in line
    assert "subset" not in data_line(DataRecord.from_dict({"kind": "corpus", "clips": 10}), 16000)


def test_card_says_what_the_wall_time_included(tiny_model):
    card = render_card(_cfg(tiny_model, wall_time_s=7200, wall_time_note="cores shared with another training"))
    assert "wall time 2.00 h (cores shared with another training)" in card
    assert "wall time 2.00 h\n" in render_card(_cfg(tiny_model, wall_time_s=7200))
    assert "wall time 2.5 min\n" in render_card(_cfg(tiny_model, wall_time_s=150))  # "0.04 h" before
    assert "wall time 12 s\n" in render_card(_cfg(tiny_model, wall_time_s=12.3))  # "0.00 h" before


def test_card_and_results_count_the_clips_of_every_ddp_process(tiny_model):
    from audioemb.model_config import ModelConfig

    env = {"device": "cpu", "device_name": "x", "machine": "x, 2 cores", "world_size": 2, "precision": "bf16"}
    cfg = _cfg(tiny_model, steps=2000, batch_size=32, env=env)
    assert "2000 steps of 32 recordings per process on 2 processes (64 per step)" in render_card(cfg)
    assert ModelConfig.from_dict(cfg).training.global_batch == 64
    assert "2000 steps of 32 recordings," in render_card(_cfg(tiny_model, steps=2000, batch_size=32))


def test_the_card_names_a_model_as_it_loads(tiny_model):
    """Regression: a user's model card said `--model byol-s.data` and `audioemb.load("byol-s.data")`, which fail
    (only shipped models load by name)."""
    cfg = _cfg(tiny_model)
    cfg["name"] = "byol-s.mysounds"
    assert "--model path/to/byol-s.mysounds" in render_card(cfg) and "--model byol-s.mysounds" not in render_card(cfg)
    cfg["name"] = "npc-s.debian"  # a shipped model loads by its name
    card = render_card(cfg)
    assert "--model npc-s.debian\n" in card and 'audioemb.load("npc-s.debian")' in card
