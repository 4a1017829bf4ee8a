"""Racing's rules (harness/racing.py), pure functions of recorded accuracies,
on cases whose answers are worked out by hand."""
import math

import numpy as np
import pytest
from scipy import stats as sps

from harness import racing
from harness.errors import ConfigError

RACE = racing.parse({"race": [2, 10]}, "g.toml [sweep]")
TOP = {s: v for s, v in enumerate([0.9700, 0.9720, 0.9710, 0.9730, 0.9705, 0.9715, 0.9725, 0.9712, 0.9718, 0.9722])}


def test_the_schedule_and_the_alpha_per_look():
    assert RACE.schedule == (2, 4, 6, 8, 10) and RACE.rounds == 5 and RACE.worst_case_runs == 10
    assert RACE.alpha_per_look == pytest.approx(0.01)
    race = racing.parse({"race": [2, 9], "step": 3}, "g")
    assert race.schedule == (2, 5, 8, 9) and race.alpha_per_look == pytest.approx(0.0125)
    assert racing.parse({"race": [3, 3]}, "g").schedule == (3,)
    loose = racing.parse({"race": [2, 10], "step": 4, "alpha": 0.2}, "g")
    assert loose.schedule == (2, 6, 10) and loose.alpha_per_look == pytest.approx(0.2 / 3)
    assert racing.is_race({"race": [2, 10]}) and not racing.is_race([0, 1, 2])


@pytest.mark.parametrize("value,message", [
    ({"race": [1, 10]}, "the race's minimum must be a whole number from 2 to 1000, got 1"),
    ({"race": [4, 3]}, "the race's maximum must be a whole number from 4 to 1000, got 3"),
    ({"race": [2, 10.0]}, "the race's maximum must be a whole number"),
    ({"race": [2]}, "race must be [min, max] such as [2, 10], got [2]"),
    ({"race": [2, 10], "step": 0}, "step must be a whole number from 1 to 1000, got 0"),
    ({"race": [2, 10], "rounds": 3}, "unknown key 'rounds' in the race table; keys: alpha, race, step"),
    ({"race": [2, 10], "alpha": 1.0}, "alpha must be a number in (0, 1) such as 0.05, got 1.0"),
    ({"race": [2, 10], "alpha": True}, "alpha must be a number in (0, 1) such as 0.05, got True"),
    ({"step": 2}, "no race = [min, max] in the race table"),
    ([2, 10], "a race is a table such as { race = [2, 10] }"),
])
def test_a_bad_race_is_one_line_naming_the_file(value, message):
    with pytest.raises(ConfigError) as e:
        racing.parse(value, "g.toml [sweep]")
    assert str(e.value).startswith("g.toml [sweep] seeds: ") and message in str(e.value)
    assert "\n" not in str(e.value)


def test_a_clearly_worse_variant_stops_after_the_first_round():
    low = {s: v - 0.07 + 1e-4 * (s % 2) for s, v in TOP.items()}
    step = racing.decide({"top": TOP, "low": low}, 0, RACE)
    # by hand, paired on seeds 0 and 1: differences -0.0700 and -0.0699, t = -1399 on 1 df, far past
    # t(1 - 0.01/2, 1) = 63.66 at this look's alpha; the TOST cannot hold 7 points inside 0.2
    d = np.array([low[0] - TOP[0], low[1] - TOP[1]])
    assert d.mean() / (d.std(ddof=1) / math.sqrt(2)) == pytest.approx(-1399, abs=1)
    assert sps.t.ppf(0.995, 1) == pytest.approx(63.657, abs=1e-3)
    assert step.paired and step.best == "top" and step.going == () and step.seeds_next is None
    assert step.stopped == {"low": "racing ended it at round 1 (2 seeds): worse than top, -7.00 points"}


def test_two_identical_variants_end_equivalent():
    # paired: the per-seed differences are all 0, so equivalent at once, and it cannot become the best
    step = racing.decide({"a": TOP, "b": dict(TOP)}, 0, RACE)
    assert step.best == "a" and step.stopped == {
        "b": "racing ended it at round 1 (2 seeds): equivalent to a (within ±0.2 points) and cannot become the best"}
    # unpaired (the variants differ in batch size, say): equivalent, but it could still lead, so it runs to the end
    rounds, racing_now, need = racing.replay({"a": TOP, "b": dict(TOP)}, RACE, pairable=False)
    assert [r.paired for r in rounds] == [False] * 5 and need == {}
    assert rounds[-1].stopped == {
        "b": "racing ended it at round 5 (10 seeds): equivalent to a at the maximum of 10 seeds"}


def test_a_close_contender_gets_more_seeds_and_the_replay_asks_for_them():
    close = {s: v - 0.0004 + (0.0015 if s % 2 else -0.0015) for s, v in TOP.items()}
    low = {s: v - 0.05 for s, v in TOP.items()}
    recorded = {"top": {s: TOP[s] for s in (0, 1)}, "close": {s: close[s] for s in (0, 1)},
                "low": {s: low[s] for s in (0, 1)}}
    rounds, still, need = racing.replay(recorded, RACE)
    assert len(rounds) == 1 and rounds[0].stopped.keys() == {"low"} and still == ["top", "close"]
    assert rounds[0].going == ("top", "close") and rounds[0].seeds_next == 4
    assert need == {"top": 4, "close": 4}  # seeds 2 and 3 of each are next
    # the same records in another order, with extra seeds of the stopped variant: the same decisions
    shuffled = {"low": {**low}, "close": dict(reversed(list(recorded["close"].items()))), "top": recorded["top"]}
    again = racing.replay(shuffled, RACE)[0]
    assert again[0].stopped == rounds[0].stopped and again[0].seeds_next == 4


def test_a_diverged_seed_drops_the_pairing_and_stays_undecided():
    broken = {**TOP, 1: math.nan}
    step = racing.decide({"a": TOP, "b": broken}, 0, RACE)
    assert not step.paired and step.going == ("a", "b") and step.seeds_next == 4  # one value: untested


def test_runs_saved_against_the_maximum():
    low = {s: v - 0.07 + 1e-4 * (s % 2) for s, v in TOP.items()}
    rounds, _, _ = racing.replay({"top": TOP, "twin": dict(TOP), "low": low}, RACE)
    # all three decided at round one: 3 x 2 runs spent of 3 x 10
    assert len(rounds) == 1 and racing.saved_runs(rounds, ["top", "twin", "low"], RACE) == 24
    rounds, _, _ = racing.replay({"a": TOP, "b": dict(TOP)}, RACE, pairable=False)
    assert racing.saved_runs(rounds, ["a", "b"], RACE) == 0  # both ran to the maximum


def test_over_all_rounds_a_race_of_equals_calls_one_worse_at_most_alpha_of_the_time():
    # three variants of one distribution, fresh noise per seed: any "worse" is a false call. Spending alpha / K
    # per look keeps the share of races with one at most alpha over all five looks (the union bound)
    rng = np.random.default_rng(25)
    false = 0
    for _ in range(200):
        results = {v: dict(enumerate(rng.normal(0.975, 0.002, 10))) for v in "abc"}
        rounds, _, _ = racing.replay(results, RACE)
        false += any("worse" in reason for r in rounds for reason in r.stopped.values())
    assert false <= 0.05 * 200
