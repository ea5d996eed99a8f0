"""The decision table of backends/bullmq/versions.py (docs/backends/bullmq.md "Versions"), without
servers; the real libraries check it in tests/test_interop_bullmq_versions.py."""
from __future__ import annotations

import pytest

from backends.bullmq.versions import Evidence, generation, pause_plan, require_moves, resume_plan
from backends.errors import Unsupported


def ev(version=None, paused=False, legacy=0, wait=0) -> Evidence:
    return Evidence(version=version, paused=paused, legacy_jobs=legacy, wait_items=wait)


@pytest.mark.parametrize("version, scripts", [("bullmq:4.18.3", "v4"), ("bullmq:5.81.5", "v5"), ("bullmq:6.7.0", "v6"),
                                              (None, "v6"), ("bullmq:5.0.0-beta.1", "v5")])
def test_known_generations(version, scripts):
    gen = generation(ev(version, paused=True, legacy=3 if scripts in ("v4", "v5") else 0, wait=2))
    assert gen.scripts == scripts and not gen.unknown
    assert require_moves(gen, "retry") == scripts


@pytest.mark.parametrize("version", ["bullmq:99.0.0", "bullmq-pro:7.0.0", "bullmq:3.15.0", "garbage", "", "bullmq:6"])
def test_unknown_versions_refuse_every_change(version):
    gen = generation(ev(version))
    assert gen.unknown and gen.scripts is None
    for call in (lambda: require_moves(gen, "retry"), lambda: pause_plan(ev(version), gen),
                 lambda: resume_plan(ev(version), gen)):
        with pytest.raises(Unsupported, match="is not BullMQ 4, 5 or 6"):
            call()


@pytest.mark.parametrize("version", ["bullmq:6.7.0", None])
def test_a_legacy_list_under_v6_or_no_version_refuses_moves_and_pause_but_resumes_by_merging(version):
    e = ev(version, paused=True, legacy=2, wait=1)
    gen = generation(e)
    with pytest.raises(Unsupported, match="legacy paused list holds 2 jobs"):
        require_moves(gen, "promote")
    with pytest.raises(Unsupported):
        pause_plan(e, gen)
    assert resume_plan(e, gen) == "v6"


def test_pause_and_resume_plans():
    v5 = "bullmq:5.81.5"
    assert pause_plan(ev(v5, wait=3), generation(ev(v5))) == "v5"
    assert pause_plan(ev(v5, paused=True, legacy=3), generation(ev(v5))) is None  # a second RENAME would clobber
    with pytest.raises(Unsupported, match="RENAME wait over paused"):
        pause_plan(ev(v5, legacy=2, wait=1), generation(ev(v5, legacy=2)))
    assert resume_plan(ev(v5, paused=True, legacy=3), generation(ev(v5))) == "v5"
    assert resume_plan(ev(v5, paused=True, legacy=3, wait=1), generation(ev(v5))) == "v6"  # merge, not RENAME
    assert pause_plan(ev("bullmq:6.7.0", wait=3), generation(ev("bullmq:6.7.0"))) == "v6"
    assert pause_plan(ev("bullmq:6.7.0", paused=True, wait=3), generation(ev("bullmq:6.7.0"))) is None
