"""Sensor filters (wasihost.filters): ESPHome's semantics and defaults, on a fake clock."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from wasihost.filters import (
    UNAVAILABLE,
    FilterBank,
    FilterChain,
    FilterConfigError,
    Filtered,
    FilterSpec,
    parse_filter,
)
from wasihost.model import Measurement, Reading

Step = tuple[float, float | None]  # (now in seconds, value or None for no value)


def chain(*entries: dict[str, object]) -> FilterChain:
    return FilterChain([parse_filter(entry) for entry in entries])


def run(
    filters: FilterChain, values: Sequence[float | None], every: float = 2.0
) -> list[float | None]:
    """One step per value, ``every`` seconds apart from t=0: what comes out of each."""
    return [filters.step(value, i * every) for i, value in enumerate(values)]


def outputs(filters: FilterChain, values: Sequence[float | None]) -> list[float]:
    return [v for v in run(filters, values) if v is not None]


def same(got: Sequence[float | None], expected: Sequence[float | None]) -> bool:
    """Equal, NaN equal to NaN, floats within 1e-9."""
    if len(got) != len(expected):
        return False
    for a, b in zip(got, expected, strict=True):
        if a is None or b is None:
            if a is not b:
                return False
        elif not (math.isnan(a) and math.isnan(b)) and not math.isclose(a, b, abs_tol=1e-9):
            return False
    return True


# -- value filters --------------------------------------------------------------


def test_offset_and_multiply_run_in_order() -> None:
    assert outputs(chain({"offset": -0.5}, {"multiply": 2}), [21.0]) == [41.0]
    assert outputs(chain({"multiply": 2}, {"offset": -0.5}), [21.0]) == [41.5]


def test_calibrate_linear_least_squares_fits_one_line() -> None:
    # Through (0, 0), (1, 1), (2, 3): slope 1.5, intercept -1/6, the last point off it.
    filters = chain({"calibrate_linear": ["0 -> 0", "1 -> 1", {"from": 2, "to": 3}]})
    assert same(outputs(filters, [4.0, -2.0]), [6 - 1 / 6, -3 - 1 / 6])


def test_calibrate_linear_exact_goes_through_every_point_and_extends_the_ends() -> None:
    filters = chain(
        {"calibrate_linear": {"datapoints": ["0 -> 0", "10 -> 20", "20 -> 25"], "method": "exact"}}
    )
    assert same(outputs(filters, [5.0, 10.0, 15.0, 30.0, -10.0]), [10, 20, 22.5, 30, -20])


def test_clamp_limits_or_drops_out_of_range_values() -> None:
    assert outputs(chain({"clamp": {"min_value": 0, "max_value": 100}}), [-5, 50, 120]) == [
        0,
        50,
        100,
    ]
    assert outputs(chain({"clamp": {"max_value": 100}}), [-5, 120]) == [-5, 100]
    dropping = chain({"clamp": {"min_value": 0, "max_value": 100, "ignore_out_of_range": True}})
    assert outputs(dropping, [-5, 50, 120]) == [50]


def test_round_rounds_half_away_from_zero_like_roundf() -> None:
    assert outputs(chain({"round": 1}), [2.25, -2.25, 21.04]) == [2.3, -2.3, 21.0]
    assert outputs(chain({"round": {"accuracy_decimals": 0}}), [0.5, 1.49]) == [1.0, 1.0]


def test_filter_out_drops_a_value_a_list_or_nan() -> None:
    assert outputs(chain({"filter_out": 85.0}), [21.0, 85.0, 85.00000001]) == [21.0]
    assert outputs(chain({"filter_out": [85.0, -40.0]}), [-40.0, 20.0, 85.0]) == [20.0]
    nan_out = chain({"timeout": 3}, {"filter_out": math.nan})
    assert run(nan_out, [20.0, None, None]) == [20.0, None, None]  # the timeout's NaN is dropped


# -- window filters: ESPHome's send_every / send_first_at -------------------------------


def test_median_defaults_send_the_first_value_then_every_fifth() -> None:
    # window_size 5, send_every 5, send_first_at 1
    got = run(chain({"median": {}}), [float(v) for v in range(1, 12)])
    assert got == [1.0, None, None, None, None, 4.0, None, None, None, None, 9.0]


def test_median_of_an_even_window_is_the_mean_of_the_middle_two() -> None:
    filters = chain({"median": {"window_size": 4, "send_every": 1}})
    assert outputs(filters, [10.0, 30.0, 20.0, 100.0, 0.0]) == [10.0, 20.0, 20.0, 25.0, 25.0]


def test_send_first_at_delays_the_first_value() -> None:
    filters = chain({"median": {"window_size": 3, "send_every": 5, "send_first_at": 3}})
    got = run(filters, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    assert got == [None, None, 2.0, None, None, None, None, 7.0]


def test_sliding_window_moving_average_defaults_15() -> None:
    got = run(chain({"sliding_window_moving_average": {}}), [float(v) for v in range(1, 17)])
    assert [v for v in got if v is not None] == [1.0, 9.0]  # 1, then the mean of 2..16
    assert got.index(9.0) == 15


def test_exponential_moving_average() -> None:
    filters = chain({"exponential_moving_average": {"alpha": 0.5, "send_every": 1}})
    assert outputs(filters, [10.0, 20.0, 20.0]) == [10.0, 15.0, 17.5]
    defaults = run(chain({"exponential_moving_average": {}}), [10.0] + [20.0] * 15)
    assert [i for i, v in enumerate(defaults) if v is not None] == [0, 15]  # alpha 0.1, every 15
    assert same([defaults[15]], [20 - 10 * 0.9**15])


def test_windows_skip_nan_but_a_window_of_nan_is_nan() -> None:
    filters = chain({"timeout": 3}, {"median": {"window_size": 2, "send_every": 1}})
    got = run(filters, [10.0, None, None, None, None])
    assert same(got, [10.0, None, 10.0, None, None])  # NaN at t=4: the median skips it
    only_nan = FilterChain([parse_filter({"median": {"window_size": 1, "send_every": 1}})])
    assert same([only_nan.filters[0].new_value(math.nan, 0)], [math.nan])


# -- time filters -------------------------------------------------------------------


def test_throttle_passes_at_most_one_value_per_period() -> None:
    got = run(chain({"throttle": 10}), [float(v) for v in range(12)])  # every 2 s
    assert [v for v in got if v is not None] == [0.0, 5.0, 10.0]  # t = 0, 10, 20


def test_throttle_average_sends_each_periods_mean_at_its_end() -> None:
    filters = chain({"throttle_average": "10s"})
    got = run(filters, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 100.0] + [None] * 7)
    # t=10: the mean of t=0..10; t=20: of the one value at t=12; t=30: none, nothing.
    assert got == [None] * 5 + [3.5] + [None] * 4 + [100.0] + [None] * 3


def test_heartbeat_sends_the_last_value_every_period_and_optimistic_also_at_once() -> None:
    got = run(
        chain({"heartbeat": 10}), [1.0, 2.0, None, None, None, 6.0, None, None, None, None, None]
    )
    assert got == [None] * 5 + [6.0] + [None] * 4 + [6.0]  # only on the beat (t=10, t=20)
    optimistic = chain({"heartbeat": {"period": 10, "optimistic": True}})
    got = run(optimistic, [1.0, 2.0, None, None, None, None, None, None, None, None, None])
    assert got == [1.0, 2.0, None, None, None, 2.0, None, None, None, None, 2.0]


def test_timeout_sends_unavailable_once_after_the_period_without_a_value() -> None:
    got = run(chain({"timeout": 5}), [20.0, 21.0, None, None, None, None, 22.0])
    # the last value at t=2: quiet from t=7, so NaN at t=8, once; then values again
    assert same(got, [20.0, 21.0, None, None, math.nan, None, 22.0])
    assert same(run(chain({"timeout": {"timeout": 5, "value": 0}}), [20.0, None, None, None]),
                [20.0, None, None, 0.0])  # fmt: skip
    assert same(run(chain({"timeout": {"timeout": 5, "value": "last"}}), [20.0, None, None, None]),
                [20.0, None, None, 20.0])  # fmt: skip


def test_a_value_arriving_as_the_timeout_is_due_resets_it() -> None:
    filters = chain({"timeout": 4}, {"delta": 5})
    assert same(run(filters, [20.0, None, None, 21.0]), [20.0, None, math.nan, 21.0])
    # t=10 is past 6 + 4, but the value came in that cycle: no unavailable, and
    # the delta after the timeout saw no NaN (which would have let 22.0 through).
    assert filters.step(22.0, 10.0) is None
    assert filters.step(None, 13.0) is None and same([filters.step(None, 14.0)], [math.nan])


# -- delta ------------------------------------------------------------------------------


def test_delta_absolute_passes_the_first_value_then_changes_over_it() -> None:
    filters = chain({"delta": 0.5})
    assert outputs(filters, [20.0, 20.3, 20.5, 20.6, 20.6, 20.0]) == [20.0, 20.6, 20.0]


def test_delta_percent_is_of_the_last_value_passed() -> None:
    filters = chain({"delta": "10%"})
    assert outputs(filters, [100.0, 105.0, 111.0, 100.0, 99.0]) == [100.0, 111.0, 99.0]


def test_delta_max_value_rejects_spikes() -> None:
    filters = chain({"delta": {"min_value": 0, "max_value": "50%"}})
    assert outputs(filters, [100.0, 100.0, 101.0, 500.0, 102.0]) == [100.0, 101.0, 102.0]


def test_delta_passes_unavailable_once_and_the_next_value_after_it() -> None:
    filters = chain({"timeout": 3}, {"delta": 5})
    got = run(filters, [20.0, None, None, None, 20.1, 20.2])
    assert same(got, [20.0, None, math.nan, None, 20.1, None])


def test_heartbeat_after_delta_repeats_an_unchanged_value() -> None:
    filters = chain({"delta": 1}, {"heartbeat": {"period": 6, "optimistic": True}})
    assert run(filters, [20.0, 20.1, 20.2, 20.3, 22.0]) == [20.0, None, None, 20.0, 22.0]


# -- parsing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "where", "message"),
    [
        ({"smooth": 1}, "smooth", "unknown filter"),
        ({"offset": 1, "multiply": 2}, "", "one filter per entry"),
        ("offset", "", "one filter per entry"),
        ({"offset": "1"}, "offset", "expected a number"),
        ({"offset": True}, "offset", "expected a number"),
        ({"median": {"window_size": 0}}, "median.window_size", "at least 1"),
        ({"median": {"window_size": 2.5}}, "median.window_size", "whole number"),
        ({"median": {"size": 3}}, "median.size", "unknown parameter"),
        ({"median": 5}, "median", "expected a table"),
        ({"median": {"send_every": 2, "send_first_at": 3}}, "median.send_first_at", "at most"),
        (
            {"exponential_moving_average": {"alpha": 0}},
            "exponential_moving_average.alpha",
            "above 0",
        ),
        (
            {"exponential_moving_average": {"alpha": 1.1}},
            "exponential_moving_average.alpha",
            "at most 1",
        ),
        ({"calibrate_linear": ["0 -> 0"]}, "calibrate_linear.datapoints", "at least 2"),
        (
            {"calibrate_linear": ["0 -> 0", "1 => 1"]},
            "calibrate_linear.datapoints[1]",
            '"20.5 -> 21.0"',
        ),
        ({"calibrate_linear": ["x -> 0", "1 -> 1"]}, "calibrate_linear.datapoints[0]", "datapoint"),
        ({"calibrate_linear": [{"from": 1}, "1 -> 1"]}, "calibrate_linear.datapoints[0]", "'to'"),
        ({"calibrate_linear": ["1 -> 0", "1 -> 1"]}, "calibrate_linear.datapoints", "all the same"),
        (
            {"calibrate_linear": {"datapoints": ["2 -> 0", "1 -> 1"], "method": "exact"}},
            "calibrate_linear.datapoints[1]",
            "must increase",
        ),
        (
            {"calibrate_linear": {"datapoints": ["0 -> 0", "1 -> 1"], "method": "cubic"}},
            "calibrate_linear.method",
            "least_squares",
        ),
        ({"clamp": {}}, "clamp", "min_value, max_value or both"),
        ({"clamp": {"min_value": 5, "max_value": 1}}, "clamp.min_value", "above max_value"),
        (
            {"clamp": {"min_value": 1, "ignore_out_of_range": "yes"}},
            "clamp.ignore_out_of_range",
            "true or false",
        ),
        ({"round": -1}, "round.accuracy_decimals", "0 to 15"),
        ({"filter_out": []}, "filter_out", "a number"),
        ({"filter_out": [1, "x"]}, "filter_out[1]", "expected a number"),
        ({"delta": -1}, "delta.min_value", "0 or more"),
        ({"delta": "five%"}, "delta.min_value", "percentage"),
        ({"delta": {}}, "delta", "min_value, max_value or both"),
        ({"delta": {"min_value": 5, "max_value": 1}}, "delta.min_value", "above max_value"),
        ({"throttle": 0}, "throttle", "longer than 0"),
        ({"throttle": "soon"}, "throttle", '"30s"'),
        ({"throttle_average": [60]}, "throttle_average", "expected seconds"),
        ({"heartbeat": {"optimistic": True}}, "heartbeat.period", "required"),
        ({"heartbeat": {"period": 5, "optimistic": 1}}, "heartbeat.optimistic", "true or false"),
        ({"timeout": {"value": 0}}, "timeout.timeout", "required"),
        ({"timeout": {"timeout": 5, "value": "first"}}, "timeout.value", '"last"'),
    ],
)
def test_a_bad_entry_names_its_key(entry: object, where: str, message: str) -> None:
    with pytest.raises(FilterConfigError) as info:
        parse_filter(entry)
    assert info.value.where == where
    assert message in info.value.message


@pytest.mark.parametrize(
    ("written", "seconds"),
    [(30, 30.0), (0.5, 0.5), ("30s", 30.0), ("5min", 300.0), ("500ms", 0.5), ("1h", 3600.0),
     ("2 min", 120.0), ("45", 45.0)],
)  # fmt: skip
def test_durations_are_seconds_or_esphome_strings(written: object, seconds: float) -> None:
    spec = parse_filter({"throttle": written})
    assert getattr(spec, "period") == seconds  # noqa: B009


def test_defaults_are_esphomes() -> None:
    def params(entry: dict[str, object]) -> FilterSpec:
        return parse_filter(entry)

    median = params({"median": {}})
    assert (median.window_size, median.send_every, median.send_first_at) == (5, 5, 1)  # type: ignore[attr-defined]
    swma = params({"sliding_window_moving_average": {}})
    assert (swma.window_size, swma.send_every, swma.send_first_at) == (15, 15, 1)  # type: ignore[attr-defined]
    ema = params({"exponential_moving_average": {}})
    assert (ema.alpha, ema.send_every, ema.send_first_at) == (0.1, 15, 1)  # type: ignore[attr-defined]
    assert params({"calibrate_linear": ["0 -> 0", "1 -> 1"]}).method == "least_squares"  # type: ignore[attr-defined]
    assert params({"clamp": {"min_value": 0}}).ignore_out_of_range is False  # type: ignore[attr-defined]
    assert math.isnan(params({"timeout": 30}).value)  # type: ignore[attr-defined]
    assert params({"heartbeat": 30}).optimistic is False  # type: ignore[attr-defined]


# -- the bank: what the app state, history and MQTT get --------------------------------


def reading(t_ms: int, **values: float) -> Reading:
    return Reading(
        "dht22",
        "dht22-plugin",
        t_ms,
        tuple(Measurement("dht22", n, v, "°C", "temperature", t_ms) for n, v in values.items()),
        {"stale": False},
    )


def bank(**chains: list[dict[str, object]]) -> FilterBank:
    return FilterBank(
        {"dht22": {name: [parse_filter(e) for e in entries] for name, entries in chains.items()}}
    )


def values(r: Reading | None) -> dict[str, float]:
    assert r is not None
    return {m.name: m.value for m in r.measurements}


def test_a_plugin_without_filters_passes_its_reading_unchanged() -> None:
    filters = bank(temperature=[{"offset": 1}])
    other = Reading("sht31", "sensor-plugin", 1, (), {})
    result = filters.apply("sht31", "sensor-plugin", other, 0.0, 1)
    assert result.passed is other and result.shown is other


def test_a_held_back_value_is_not_passed_on_but_still_shown() -> None:
    filters = bank(temperature=[{"offset": -0.5}, {"throttle": 10}])
    first = filters.apply(
        "dht22", "dht22-plugin", reading(1000, temperature=21.0, humidity=45.0), 0, 1000
    )
    assert values(first.passed) == {"temperature": 20.5, "humidity": 45.0}
    second = filters.apply(
        "dht22", "dht22-plugin", reading(3000, temperature=22.0, humidity=46.0), 2, 3000
    )
    assert values(second.passed) == {"humidity": 46.0}  # history and MQTT: no temperature
    assert values(second.shown) == {"temperature": 20.5, "humidity": 46.0}  # the dashboard keeps it
    assert second.shown is not None
    assert [m.name for m in second.shown.measurements] == [
        "temperature",
        "humidity",
    ]  # plugin order
    held = second.shown.measurements[0]
    assert held.timestamp_ms == 1000  # when that value was let out


def test_timeout_makes_a_quiet_measurement_unavailable_until_it_reports_again() -> None:
    filters = bank(humidity=[{"timeout": 5}])
    filters.apply("dht22", "dht22-plugin", reading(0, temperature=21.0, humidity=45.0), 0, 0)
    quiet = filters.apply("dht22", "dht22-plugin", reading(2000, temperature=21.0), 2, 2000)
    assert quiet.passed is not None and "humidity_status" not in quiet.passed.status
    # The poll fails from here: the timer still runs and says so at t=5.
    assert filters.apply("dht22", "dht22-plugin", None, 4, 4000) == Filtered(None, None)
    gone = filters.apply("dht22", "dht22-plugin", None, 6, 6000)
    assert gone.passed is not None and gone.shown is not None
    assert gone.passed.timestamp_ms == 6000 and values(gone.passed) == {}
    assert gone.passed.status == {"humidity_status": UNAVAILABLE}
    assert values(gone.shown) == {"temperature": 21.0}  # humidity no longer shown
    assert gone.shown.status == {"stale": False, "humidity_status": UNAVAILABLE}
    assert gone.shown.timestamp_ms == 2000  # the poll's, so the card still looks stale
    back = filters.apply(
        "dht22", "dht22-plugin", reading(8000, temperature=21.0, humidity=40.0), 8, 8000
    )
    assert values(back.passed) == {"temperature": 21.0, "humidity": 40.0}
    assert back.passed is not None and back.shown is not None
    assert (
        "humidity_status" not in back.passed.status and "humidity_status" not in back.shown.status
    )


def test_a_measurement_the_plugin_does_not_report_is_named_once() -> None:
    filters = bank(temprature=[{"offset": 1}])
    first = filters.apply("dht22", "dht22-plugin", reading(0, temperature=21.0), 0, 0)
    assert first.unreported == ("temprature",)
    assert (
        filters.apply("dht22", "dht22-plugin", reading(1, temperature=21.0), 1, 1).unreported == ()
    )


def test_a_non_finite_result_is_unavailable() -> None:
    filters = bank(temperature=[{"multiply": 1e308}, {"multiply": 10}])
    result = filters.apply("dht22", "dht22-plugin", reading(0, temperature=21.0), 0, 0)
    assert result.passed is not None and values(result.passed) == {}
    assert result.passed.status["temperature_status"] == UNAVAILABLE
