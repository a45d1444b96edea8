"""Bad input to the store's and the resume path's public entry points: each is one clear
error (type and message) or a documented behaviour, never a silent wrong result."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gdlens as gd
from gdlens.store import StoreError, open_store


@pytest.fixture
def store(tmp_path):
    store = open_store(tmp_path / "runs")
    store.create_run({"a": 1}, run_id="aaa111").finish()
    store.create_run({"a": 2}, run_id="aab222").interrupt()
    (tmp_path / "plain").write_text("x")
    return store


CASES = [
    ("run-id-int", lambda s, t: s.run(123), ValueError, "non-empty string"),
    ("run-id-empty", lambda s, t: s.run(""), ValueError, "non-empty string"),
    ("run-id-none", lambda s, t: s.run(None), ValueError, "non-empty string"),
    ("run-id-unknown", lambda s, t: s.run("zzz"), KeyError, "no run 'zzz'"),
    ("run-id-ambiguous", lambda s, t: s.run("aa"), KeyError, "ambiguous"),
    ("run-id-like-wildcards", lambda s, t: s.run("a%"), KeyError, "no run"),
    ("runs-status-typo", lambda s, t: s.runs(status="complete"), ValueError, "completed"),
    ("runs-sweep-not-a-string", lambda s, t: s.runs(sweep=3), TypeError, "sweep must be a string"),
    ("runs-name-not-a-string", lambda s, t: s.runs(name=["a"]), TypeError, "name must be a string"),
    ("resume-completed", lambda s, t: s.resume("aaa"), StoreError, "already completed"),
    ("resume-unknown", lambda s, t: s.resume("zzz"), KeyError, "no run"),
    ("delete-unknown", lambda s, t: s.delete_run("zzz"), KeyError, "no run"),
    ("delete-empty-id", lambda s, t: s.delete_run(""), ValueError, "non-empty string"),
    ("create-run-bad-id", lambda s, t: s.create_run({}, run_id="a/b"), ValueError, "invalid name"),
    ("create-run-unserialisable-config", lambda s, t: s.create_run({"f": object()}), TypeError,
     "not JSON-serialisable"),
    ("log-array-object-dtype", lambda s, t: s.run("aab").log_array(0, "x", np.array([{}], dtype=object)),
     TypeError, "dtype object"),
    ("log-array-bad-name", lambda s, t: s.run("aab").log_array(0, "../x", np.ones(2)), ValueError,
     "invalid array name"),
    ("open-reader-missing", lambda s, t: open_store(t / "nothing", create=False), StoreError, "no gdlens store"),
    ("open-reader-on-a-file", lambda s, t: open_store(t / "plain", create=False), StoreError, "not a directory"),
    ("open-readonly-missing", lambda s, t: open_store(t / "nothing", readonly=True), StoreError, "no gdlens store"),
    ("readonly-write", lambda s, t: open_store(t / "runs", readonly=True).create_run({}), StoreError, "read-only"),
    ("readonly-delete", lambda s, t: open_store(t / "runs", readonly=True).delete_run("aab"), StoreError,
     "read-only"),
    ("gd-resume-no-store", lambda s, t: gd.resume("aab", t / "nothing"), StoreError, "no gdlens store"),
    ("gd-resume-bad-id", lambda s, t: gd.resume(7, s), ValueError, "non-empty string"),
    ("gd-resume-python-model", lambda s, t: gd.resume("aab", s), ValueError, "does not say how to rebuild"),
    ("train-resume-without-store", lambda s, t: gd.train(torch.nn.Linear(2, 1), "teacher_student", resume="aab",
                                                          steps=1, progress=False), ValueError, "needs store="),
    ("train-resume-unknown", lambda s, t: gd.train(torch.nn.Linear(2, 1), gd.tasks.teacher_student(8, input_dim=2),
                                                   resume="zzz", store=s, steps=1, progress=False, probes=[]),
     KeyError, "no run 'zzz'"),
]


@pytest.mark.parametrize("name, call, error, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_error(store, tmp_path, name, call, error, message):
    with pytest.raises(error, match=message):
        call(store, tmp_path)
    assert not (tmp_path / "nothing").exists()
