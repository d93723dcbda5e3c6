import pytest

from search.options import (
    AdaptiveSearchOptions,
    EvolveOptions,
    OptionError,
    options_from_dict,
    parse_options,
)


def test_defaults_fit_the_advertised_durations():
    adaptive, evolve = parse_options("adaptive_search"), parse_options("evolve")
    assert isinstance(adaptive, AdaptiveSearchOptions) and isinstance(evolve, EvolveOptions)
    assert adaptive.ucb_c == pytest.approx(1.414)
    assert adaptive.time_budget_s <= 30 * 60 and evolve.time_budget_s <= 60 * 60
    assert evolve.max_candidates > adaptive.max_candidates


def test_key_value_strings_are_parsed_and_converted():
    opts = parse_options(
        "evolve", ["islands=3", "p_global=0.5", "max-concurrent=2", "time_budget_s=25m", "max_rounds=none"]
    )
    assert (opts.islands, opts.p_global, opts.max_concurrent) == (3, 0.5, 2)
    assert opts.time_budget_s == 1500.0 and opts.max_rounds is None
    assert parse_options("adaptive_search", ["time_budget_s=1.5h"]).time_budget_s == 5400.0
    assert parse_options("adaptive_search", ["ucb_c=2", "ucb_c=3"]).ucb_c == 3.0  # last one wins


@pytest.mark.parametrize(
    "workflow, pair, expected",
    [
        ("evolve", "islnds=3", "unknown option 'islnds' for evolve (known: children_per_island"),
        ("adaptive_search", "islands=3", "unknown option 'islands' for adaptive_search"),
        ("evolve", "p_global=2", "bad value for p_global: '2' (Input should be less than or equal to 1)"),
        ("adaptive_search", "max_candidates=lots", "bad value for max_candidates: 'lots'"),
        ("adaptive_search", "time_budget_s=soon", "bad value for time_budget_s: 'soon' (expected seconds"),
        ("adaptive_search", "patience", "option 'patience' is not key=value"),
    ],
)
def test_bad_options_give_one_clear_line(workflow, pair, expected):
    with pytest.raises(OptionError) as raised:
        parse_options(workflow, [pair])
    message = str(raised.value)
    assert message.startswith(expected)
    assert "\n" not in message


def test_unknown_workflow_is_refused():
    with pytest.raises(OptionError, match="unknown workflow 'kernelgen'"):
        parse_options("kernelgen")


def test_options_round_trip_through_a_state_dict():
    opts = parse_options("evolve", ["islands=2", "seed=7"])
    saved = opts.model_dump(mode="json", exclude={"workflow"})
    assert options_from_dict("evolve", saved) == opts


def test_executor_from_option_or_environment(monkeypatch):
    monkeypatch.delenv("AKG_OP_EXECUTOR", raising=False)
    assert parse_options("evolve").executor == "local"
    assert parse_options("evolve", ["executor=ray"]).executor == "ray"
    monkeypatch.setenv("AKG_OP_EXECUTOR", "ray")
    assert parse_options("adaptive_search").executor == "ray"
    assert parse_options("evolve", ["executor=local"]).executor == "local"  # the option wins
    monkeypatch.setenv("AKG_OP_EXECUTOR", "dask")
    with pytest.raises(OptionError, match="bad value for executor: 'dask'"):
        parse_options("evolve")
