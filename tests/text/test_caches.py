"""What the text layer keeps per model: one record a model, let go with the model."""

from __future__ import annotations

import gc

from autocomplete.text.caches import _KEPT, kept


class Model:
    pass


def test_one_record_a_model_let_go_with_it():
    a, b = Model(), Model()
    kept(a).masks["x"] = 1
    assert kept(a) is kept(a) and kept(a).masks == {"x": 1} and kept(b).masks == {}
    held = len(_KEPT)
    del a
    gc.collect()
    assert len(_KEPT) == held - 1 and kept(b).vocab is None
