"""Tour files (genstudio.core.tour): the shipped tour is valid and jargon-free, a bad file gives
one error naming the file, stage and field, JSON round trip, quick overrides, and the memory of
runs an earlier tour trained."""

from __future__ import annotations

import json
import re

import pytest

from genstudio.core.data import dataset_table
from genstudio.core.registry import registry
from genstudio.core.tour import (
    DEFAULT_TOUR,
    Stage,
    Tour,
    TourError,
    builtin_tours,
    check_names,
    load_tour,
    parse_tour,
    remember_run,
    remembered_run,
    save_tour,
)

JARGON = re.compile(r"x_t|x̂|\bNFE\b|\bIAF\b|\bMAF\b|\bRBM\b|\bDDIM\b|\bDDPM\b|\bVAE\b|epsilon|latent|"
                    r"\bKL\b|gradient|diffusion|Gaussian splat", re.IGNORECASE)
PANELS = {"training", "sampler", "trajectory", "latent", "splats", "settings", "runs"}


def _names(tour: Tour, panels: set[str] = PANELS) -> None:
    check_names(tour, panels=panels, datasets={n for n, _ in dataset_table()},
                plugins={k: e.cls for k, e in registry().entries.items() if e.ok})


def test_default_tour_is_shipped_valid_and_in_plain_words():
    assert DEFAULT_TOUR in builtin_tours()
    tour = load_tour()
    assert len(tour.stages) >= 8
    assert [s.job for s in tour.stages if s.job] == ["train", "sample", "compare", "train", "latent", "train", "fly"]
    _names(tour)
    for st in tour.stages:
        assert not JARGON.search(st.caption + " " + st.title), (st.title, JARGON.search(st.caption + st.title))
        assert 40 < len(st.caption) < 520, st.title  # readable at 22 pt in the caption bar


def test_quick_settings_merge_over_the_stage_settings():
    compare = next(s for s in load_tour().stages if s.job == "compare")
    full, quick = compare.settings_for(False), compare.settings_for(True)
    assert full["b"] == {"sampler": "ddpm", "steps": 1000, "seed": 0}
    assert quick["b"] == {"sampler": "ddpm", "steps": 20, "seed": 0}  # tables merge: the sampler stays
    assert quick["a"] == full["a"] and quick["n"] < full["n"]


GOOD = {"name": "t", "stages": [{"title": "One", "caption": "hello", "panel": "sampler", "job": "sample",
                                 "settings": {"n": 10, "play": True}}]}


def _bad(**stage):
    return {"stages": [{**GOOD["stages"][0], **stage}]}


@pytest.mark.parametrize("data, message", [
    ({"stages": []}, "no stages"),
    ({"stages": [{"title": "One"}]}, "stage 1 ('One'): needs a non-empty caption"),
    (_bad(job="dance"), "stage 1 ('One'): unknown job 'dance'"),
    (_bad(settings={"stpes": 3}), "unknown setting 'stpes' for a sample job (known: n, play, sampler, seed, steps)"),
    (_bad(settings={"n": "many"}), "settings.n must be a whole number, got 'many'"),
    (_bad(settings={"play": 1}), "settings.play must be true or false"),
    (_bad(quick={"n": 2.5}), "quick.n must be a whole number"),
    (_bad(colour="red"), "unknown key 'colour'"),
    (_bad(job="train", settings={"plugin": "ddpm"}), "a train job needs settings.dataset"),
    (_bad(job="compare", settings={"a": {"sampler": "ddim", "step": 3}}), "settings.a: unknown key 'step'"),
    (_bad(hold=-1), "hold must be >= 0"),
    ({"stages": GOOD["stages"], "title": "x"}, "unknown top-level key 'title'"),
])
def test_a_bad_tour_is_one_clear_error(data, message):
    with pytest.raises(TourError) as e:
        parse_tour(data, "my.toml")
    assert message in str(e.value) and str(e.value).startswith("my.toml")


def test_bad_files_on_disk(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[[stages]]\ntitle = 'x\n", encoding="utf-8")
    with pytest.raises(TourError, match=r"bad\.toml: not valid TOML"):
        load_tour(bad)
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    with pytest.raises(TourError, match=r"bad\.json: not valid JSON \(line 1"):
        load_tour(tmp_path / "bad.json")
    with pytest.raises(TourError, match="no tour 'nope'.*basics"):
        load_tour("nope")


def test_names_are_checked_against_this_install():
    tour = parse_tour(_bad(job="train", panel="training", settings={"plugin": "ddpm", "dataset": "8gaussians",
                                                                     "config": {"hiden": 3}}), "t.toml")
    with pytest.raises(TourError, match="ddpm has no setting 'hiden'"):
        _names(tour)
    with pytest.raises(TourError, match="no panel 'training'"):
        _names(parse_tour(_bad(panel="training"), "t.toml"), panels={"sampler"})
    with pytest.raises(TourError, match="no dataset 'mnist'"):
        _names(parse_tour(_bad(job="train", settings={"plugin": "ddpm", "dataset": "mnist"}), "t.toml"))


def test_json_round_trip(tmp_path):
    tour = load_tour()
    path = save_tour(tour, tmp_path / "copy.toml")  # written as JSON (the stdlib has no TOML writer)
    assert path.suffix == ".json" and json.loads(path.read_text())["stages"][1]["settings"]["plugin"] == "ddpm"
    again = load_tour(path)
    assert again.stages == tour.stages and again.name == tour.name


def test_memory_of_runs_kept_from_an_earlier_tour(tmp_path):
    s = {"plugin": "vae", "dataset": "digits", "steps": 600, "reuse": True}
    assert remembered_run(tmp_path, s) is None
    remember_run(tmp_path, s, "run-1")
    assert remembered_run(tmp_path, {**s, "reuse": False}) == "run-1"  # reuse itself is not part of the key
    assert remembered_run(tmp_path, {**s, "steps": 30}) is None  # other settings: another model
    assert Stage("a", "b").hold == 3.0


def test_cli_checks_lists_and_refuses_a_bad_tour(tmp_path, capsys):
    from genstudio.cli import main

    assert main(["demo", "--check"]) == 0
    assert "basics.toml: 9 stages, ok" in capsys.readouterr().out
    assert main(["demo", "--list"]) == 0
    assert capsys.readouterr().out.startswith("basics: GenStudio in a few minutes")
    bad = tmp_path / "t.toml"
    bad.write_text('[[stages]]\ntitle = "A"\ncaption = "c"\njob = "fly"\n[stages.settings]\nspeed = 2\n')
    assert main(["demo", str(bad)]) == 2  # before any window opens
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "stage 1 ('A'): settings: unknown setting 'speed' for a fly job" in err
