"""The device's store of enrolled commands (edge/runtime/audio/enrolled.py): labels refused with the reason, nothing
changed by a refused or failed save, a foreign file warned about and never overwritten, two enrolments at once
both kept."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.runtime.audio.enrolled import FILE, Store, StoreError, check_label, state_dir
from tests.conftest import ROOT

BUILTINS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]


def vectors(n=3, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 96)).astype(np.float32)


@pytest.mark.parametrize("label, why", [
    ("", "empty"), ("   ", "empty"), ("x" * 33, "at most 32"), ("a/b", "no '/'"), ("..", "no '/'"),
    ("tab\there", "control"), ("_silence_", "reserved"), ("YES", "only by case"),
])
def test_a_bad_label_says_what_is_wrong(label, why):
    with pytest.raises(StoreError, match=why):
        check_label(label, BUILTINS)


@pytest.mark.parametrize("label", ["suivant", "weiter", "siguiente", "次へ", "dalej-2", "Order 66"])
def test_labels_in_any_language_are_kept_as_written(label):
    assert check_label(f" {label} ", BUILTINS) == label


def test_commands_survive_a_round_trip_and_a_refused_change_leaves_the_file_as_it_was(tmp_path):
    store = Store(tmp_path / "state")
    assert store.load() == ({}, None) and store.stamp() is None
    store.add("suivant", vectors(3))
    store.add("retour", vectors(4, seed=1))
    before = store.path.read_bytes()
    for label, kw in (("suivant", {}), ("Suivant", {"replace": True}), ("yes", {}), ("a/b", {})):
        with pytest.raises(StoreError):
            store.add(label, vectors(2, seed=2), builtins=BUILTINS, **kw)
    assert store.path.read_bytes() == before
    loaded, warning = store.load()
    assert warning is None and sorted(loaded) == ["retour", "suivant"]
    np.testing.assert_allclose(loaded["suivant"], vectors(3), atol=1e-6)  # stored rounded to 6 decimals
    store.add("suivant", vectors(5, seed=3), replace=True)
    assert len(store.load()[0]["suivant"]) == 5
    assert store.forget("retour") and not store.forget("retour")
    assert list(store.load()[0]) == ["suivant"]
    assert sorted(p.name for p in store.folder.iterdir()) == [".commands.lock", FILE]  # no temporary left


def test_a_foreign_file_is_warned_about_and_never_overwritten(tmp_path):
    store = Store(tmp_path)
    store.path.write_text('{"something": "else"}')
    commands, warning = store.load()
    assert commands == {} and str(store.path) in warning and "only the built-ins" in warning
    with pytest.raises(StoreError, match="move it away"):
        store.add("suivant", vectors())
    assert store.path.read_text() == '{"something": "else"}'


@pytest.mark.skipif(os.geteuid() != 0, reason="root only: makes a read-only mount")
def test_a_read_only_state_folder_refuses_with_one_line_and_keeps_the_commands(tmp_path):
    store = Store(tmp_path / "state")
    store.add("suivant", vectors())
    before = store.path.read_bytes()
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); import numpy as np\n"
            "from edge.runtime.audio.enrolled import Store, StoreError\n"
            f"try: Store({str(store.folder)!r}).add('retour', np.ones((2, 96)))\n"
            "except StoreError as e: print(e); sys.exit(3)\n")
    r = subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind -o ro {store.folder} {store.folder} && "
                        f"{sys.executable} -c \"$0\"", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 3 and "Read-only file system" in r.stdout and str(store.folder) in r.stdout, r
    assert store.path.read_bytes() == before and list(Store(store.folder).load()[0]) == ["suivant"]


ENROL_MANY = """
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from edge.runtime.audio.enrolled import Store
for i in range(20):
    Store(sys.argv[2]).add(f"{sys.argv[3]}{i}", np.full((2, 96), i, np.float32))
"""


def test_two_enrolments_at_once_both_land(tmp_path):
    runs = [subprocess.Popen([sys.executable, "-c", ENROL_MANY, ROOT, tmp_path, prefix]) for prefix in ("a", "b")]
    assert [p.wait(timeout=120) for p in runs] == [0, 0]
    commands, warning = Store(tmp_path).load()
    assert warning is None and sorted(commands) == sorted(f"{p}{i}" for p in "ab" for i in range(20))


def test_the_state_folder_is_the_flag_then_systemds_then_the_users(tmp_path):
    assert state_dir("given", {"STATE_DIRECTORY": "/var/lib/voice"}) == Path("given")
    assert state_dir(None, {"STATE_DIRECTORY": "/var/lib/voice:/var/lib/other"}) == Path("/var/lib/voice")
    assert state_dir(None, {"XDG_STATE_HOME": str(tmp_path)}) == tmp_path / "voice-commands"
