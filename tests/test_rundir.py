"""A run's record (``edgenas.rundir``): one way to tell whether a run may be resumed with the options asked."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import pytest

from edgenas import rundir
from edgenas.errors import SearchError


@dataclass(frozen=True)
class Inner:
    rate: float = 0.5


@dataclass(frozen=True)
class Options:
    target: float
    sizes: tuple[int, ...] = (1, 2)
    inner: Inner = field(default_factory=Inner)
    added_later: int = 3


def test_options_compare_as_recorded_and_an_option_added_since_keeps_its_default() -> None:
    asked = Options(target=1.0)
    recorded = json.loads(json.dumps(asdict(asked)))  # as config.json holds it: tuples are lists
    assert rundir.same_options(recorded, asked)
    older = {k: v for k, v in recorded.items() if k != "added_later"}  # written before the option existed
    assert rundir.same_options(older, asked) and not rundir.same_options(older, Options(1.0, added_later=4))
    assert rundir.differing_options(recorded, Options(2.0, inner=Inner(0.1))) == ["target", "inner"]
    assert rundir.differing_options(recorded | {"gone": 1}, asked) == ["gone"]
    assert rundir.differing_options(None, asked) == sorted(asdict(asked))
    assert rundir.differing_options(recorded, Options(2.0, sizes=(3,)), keys=["sizes"]) == ["sizes"]
    assert rundir.resume_mismatch(recorded, Options(2.0)) == "target=2.0 (the run has 1.0)"


def test_a_run_resumed_with_other_options_is_refused_naming_them(tmp_path) -> None:
    rundir.check_resume(tmp_path, Options(1.0), SearchError, "test job")  # nothing recorded: a fresh run
    rundir.write_provenance(tmp_path, {"config": asdict(Options(1.0))}, {})
    rundir.check_resume(tmp_path, Options(1.0), SearchError, "test job")
    with pytest.raises(SearchError, match=r"holds a test job with other options: target=1.5 \(the run has 1.0\)"):
        rundir.check_resume(tmp_path, Options(1.5), SearchError, "test job")
