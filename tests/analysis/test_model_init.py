"""model's dataclasses are built by ``_slot_init``'s __init__ (slots set through their
member descriptors, or through an unfrozen twin class from ``_TWIN_FIELDS`` fields on): the
same parameters, defaults and values as dataclass's own, and still frozen."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
from dataclasses import dataclass, fields, is_dataclass

import pytest

from stopitd.analysis import model


def _model_dataclasses() -> list[type]:
    return [
        c for c in vars(model).values()
        if isinstance(c, type) and is_dataclass(c) and c.__module__ == model.__name__
    ]


def test_every_model_dataclass_has_the_slot_init() -> None:
    classes = _model_dataclasses()
    assert len(classes) > 20
    for cls in classes:
        assert cls.__init__.__qualname__ == f"{cls.__qualname__}.__init__"
        assert cls.__init__.__code__.co_filename == "<string>"
        assert "_set_" in " ".join(cls.__init__.__code__.co_names), cls.__name__


def test_the_slot_init_takes_what_dataclass_init_takes() -> None:
    for cls in _model_dataclasses():
        # the same class body as dataclass writes it, for its own __init__
        reference = dataclass(frozen=True)(type(cls.__name__, (), {
            "__annotations__": {f.name: f.type for f in fields(cls)},
            **{
                f.name: dataclasses.field(
                    default=f.default, default_factory=f.default_factory,
                    compare=f.compare, repr=f.repr,
                )
                for f in fields(cls)
            },
        }))
        ours = inspect.signature(cls.__init__)
        theirs = inspect.signature(reference.__init__)
        assert list(ours.parameters) == list(theirs.parameters), cls.__name__
        for name, p in ours.parameters.items():
            want = theirs.parameters[name].default
            if want is not inspect.Parameter.empty and repr(want) != "<factory>":
                assert p.default == want, (cls.__name__, name)


def test_values_defaults_factories_and_frozen() -> None:
    hop = model.Hop("r", model.HopStatus.PARSED, ip="192.0.2.1")
    assert (hop.raw, hop.status, hop.ip, hop.trust) == (
        "r", model.HopStatus.PARSED, "192.0.2.1", model.Trust.CLAIMED
    )
    assert hop == model.Hop(raw="r", status=model.HopStatus.PARSED, ip="192.0.2.1")
    first, second = model.ReportInfo(), model.ReportInfo()
    assert first.fields == model.KeyFields() and first == second
    assert model.OriginalEvidence().arc == model.ArcResult()
    with pytest.raises(dataclasses.FrozenInstanceError):
        hop.ip = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        model.Hop("r")  # type: ignore[call-arg]
    assert dataclasses.replace(hop, ip="2").ip == "2"


def test_values_filled_through_the_twin_are_of_their_class() -> None:
    assert len(fields(model.Hop)) >= model._TWIN_FIELDS
    hop = model.Hop("r", model.HopStatus.PARSED, ip="192.0.2.1", delay_s=1.5)
    assert type(hop) is model.Hop and hop.delay_s == 1.5 and hop.auth == ""
    assert hash(hop) == hash(model.Hop("r", model.HopStatus.PARSED, ip="192.0.2.1", delay_s=1.5))
    assert pickle.loads(pickle.dumps(hop)) == hop and copy.copy(hop) == hop
    with pytest.raises(dataclasses.FrozenInstanceError):
        hop.raw = "x"  # type: ignore[misc]
    report = model.ReportInfo(size=3)  # a default factory among the fields
    assert type(report) is model.ReportInfo and report.fields == model.KeyFields()

    class Sub(model.Hop):  # a subclass's value takes the descriptor way, keeping its class
        __slots__ = ("extra",)

    sub = Sub("r", model.HopStatus.SKIPPED, by="mx")
    assert type(sub) is Sub
    assert (sub.raw, sub.status, sub.by) == ("r", model.HopStatus.SKIPPED, "mx")
