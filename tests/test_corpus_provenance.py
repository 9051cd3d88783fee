"""recipe.json's provenance: per-part fingerprints that tell two corpus builds apart, and versions."""

import hashlib
import json

from audioemb.corpus.provenance import debian_versions, fingerprints, library_versions


def _fp(rows, corpus):
    return fingerprints(rows, [json.dumps(r, sort_keys=True) + "\n" for r in rows], corpus)


def _rows():
    return [{"path": f"audio/{s}/{i}.flac", "source": s, "split": sp, "duration_s": 1.0 + i, "group": str(i),
             "labels": {}, "tasks": []} for s in ("espeak", "fillets") for sp in ("train", "eval") for i in range(3)]


def test_a_changed_row_changes_only_its_source_and_split(tmp_path):
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "speech-tone.csv").write_text("path,label,group\na.flac,1,g\n")
    rows = _rows()
    before = _fp(rows, tmp_path)
    rows[1] = {**rows[1], "duration_s": 2.0001}  # one espeak/train clip a tenth of a millisecond longer
    after = _fp(rows, tmp_path)
    changed = {k for k in before["sources"] if before["sources"][k] != after["sources"][k]}
    assert changed == {"espeak/train"}
    assert set(before["sources"]) == {"espeak/train", "espeak/eval", "fillets/train", "fillets/eval"}
    assert before["tasks"] == {"speech-tone": hashlib.sha256(b"path,label,group\na.flac,1,g\n").hexdigest()}


def test_versions_name_the_decoders_and_missing_packages():
    libs = library_versions()
    assert set(libs) == {"soundfile", "libsndfile", "soxr", "numpy"} and all(libs.values())
    assert debian_versions(["no-such-package-audioemb"]) == {"no-such-package-audioemb": "not installed"}
