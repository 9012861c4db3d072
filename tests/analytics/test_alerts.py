"""The pure detectors and lifecycle of ``analytics.alerts``: scenarios with explicit sample
times and an injected clock, a slow loop oracle for the binned 15-min mean, and invariants."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics import Norms, NormsError, load_norms
from analytics.alerts import (
    AlertEvent,
    AlertKind,
    AlertNorms,
    BatchBuilder,
    DetectorState,
    Severity,
    ShiftCalendar,
    SubjectSpec,
    TransitionError,
    acknowledge,
    add_subject,
    admit,
    evaluate,
    load_alert_norms,
    new_state,
    next_state,
    resolve,
    set_calendars,
    warm,
)
from analytics.alerts import seed as seed_state
from tests.support import examples

T0 = 1_800_000_000.0  # the start of a shift of BLOCKS
#: A schedule of back-to-back 8-h shifts from T0 (as a calendar, which is all the core sees).
BLOCKS = "8-h blocks from T0"


@pytest.fixture(scope="module")
def alert_norms() -> AlertNorms:
    return load_alert_norms("default")


def _state(
    norms: Norms,
    alert_norms: AlertNorms,
    quantity: str = "gas",
    unit: str = "mg/m3",
    substance: str | None = "H2S",
    **kw: float,
) -> tuple[DetectorState, int, int]:
    state = new_state(norms, alert_norms)
    dev = add_subject(state, SubjectSpec(enterprise="e", device="d1"))
    slot = add_subject(
        state,
        SubjectSpec(
            enterprise="e",
            device="d1",
            sensor="d1.s",
            quantity=quantity,
            unit=unit,
            substance=substance,
            workplace="wp",
            schedule=BLOCKS,
            **kw,  # type: ignore[arg-type]
        ),
    )
    starts = T0 + 28800.0 * np.arange(-3, 10)
    set_calendars(state, {BLOCKS: ShiftCalendar.of(starts, starts + 28800.0)})
    return state, dev, slot


def _feed(
    state: DetectorState,
    slot: int,
    t: np.ndarray,
    v: np.ndarray,
    *,
    per_batch: int = 5,
    period_s: float = 1.0,
) -> list[AlertEvent]:
    events: list[AlertEvent] = []
    for i in range(0, t.size, per_batch):
        b = BatchBuilder()
        tt, vv = T0 + t[i : i + per_batch], v[i : i + per_batch]
        b.channel(slot, tt, vv, period_s, np.isfinite(vv), float(tt[-1]))
        _, ev = evaluate(state, b.build(), float(tt[-1]))
        events += ev
    return events


def _of(events: list[AlertEvent], kind: AlertKind) -> list[AlertEvent]:
    return [e for e in events if e.kind is kind]


def _leak(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """H2S: 2 mg/m³ background, a 20-min ramp to 25, 5 min at 25, then 1 mg/m³; ±2 % noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(0.0, 70 * 60.0)
    v = np.interp(t, [0, 600, 1800, 2100, 2101, 4200], [2, 2, 25, 25, 1, 1])
    return t, v * (1 + 0.02 * rng.standard_normal(t.size))


def test_h2s_leak_raises_pre_then_short_term_then_ceiling_and_clears(
    norms: Norms, alert_norms: AlertNorms
) -> None:
    state, _, slot = _state(norms, alert_norms)
    t, v = _leak()
    events = [e for e in _feed(state, slot, t, v) if e.transition != "escalated"]
    opened = [e.kind for e in events if e.transition == "opened"]
    wanted = [AlertKind.PRE_EXCEEDANCE, AlertKind.SHORT_TERM, AlertKind.CEILING]
    assert [k for k in opened if k in wanted] == wanted
    for kind in wanted:
        (first,) = [e for e in _of(events, kind) if e.transition == "opened"]
        (last,) = [e for e in _of(events, kind) if e.transition == "resolved"]
        assert last.alert_id == first.alert_id
        assert last.reason == "cleared"
        assert last.at_s > T0 + 2100  # only after the leak stopped
    ceiling = next(e for e in events if e.kind is AlertKind.CEILING)
    assert ceiling.severity is Severity.CRITICAL
    assert ceiling.threshold == pytest.approx(20.0)
    assert ceiling.unit == "mg/m3"
    assert ceiling.value is not None
    assert ceiling.value > 20.0
    assert "H2S" in ceiling.message
    assert "d1.s" in ceiling.message
    assert not state.cells.by_id  # nothing left open


def test_noisy_signal_around_a_threshold_raises_one_alert(
    norms: Norms, alert_norms: AlertNorms
) -> None:
    state, _, slot = _state(norms, alert_norms)
    rng = np.random.default_rng(3)
    t = np.arange(0.0, 3600.0)
    # Around the ceiling (20 mg/m³): crosses it about every other second for 50 minutes.
    v = np.where(t < 3000, 20.0 + rng.uniform(-1.0, 1.0, t.size), 0.5)
    events = _feed(state, slot, t, v, per_batch=1)
    ceiling = _of(events, AlertKind.CEILING)
    assert [e.transition for e in ceiling if e.transition != "escalated"] == [
        "opened",
        "resolved",
    ]
    crossings = int(np.sum(np.diff((v > 20.0).astype(int)) == 1))
    assert crossings > 100  # the signal really flapped


def test_pending_needs_min_duration_and_dips_into_the_band_do_not_restart_it(
    norms: Norms, alert_norms: AlertNorms
) -> None:
    state, _, slot = _state(norms, alert_norms)
    # 8.0 is the pre-exceedance threshold (80 % of 10); 7.5 is inside the 15 % band.
    t = np.arange(0.0, 40.0)
    v = np.where(np.arange(40) % 2 == 0, 8.2, 7.5)
    events = _of(_feed(state, slot, t, v, per_batch=1), AlertKind.PRE_EXCEEDANCE)
    (opened,) = events
    min_s = alert_norms.kinds[AlertKind.PRE_EXCEEDANCE].min_duration_s
    assert opened.at_s - T0 == pytest.approx(min_s)
    # a value clearly below (under 6.8) while pending resets instead
    state, _, slot = _state(norms, alert_norms)
    v2 = np.where(np.arange(40) % 4 == 3, 1.0, 8.2)
    assert not _of(_feed(state, slot, t, v2, per_batch=1), AlertKind.PRE_EXCEEDANCE)


def _oracle_mean(
    times: np.ndarray, values: np.ndarray, t_end: float, bin_s: float, span: float
) -> tuple[float, float]:
    """Slow loop: time-weighted mean (1 s weights) of samples whose bin is in the window."""
    cur = math.floor(t_end / bin_s)
    n = math.ceil(span / bin_s - 1e-9)
    total = weight = 0.0
    for t, v in zip(times, values, strict=True):
        b = math.floor(t / bin_s)
        if cur - n < b <= cur:
            total += v
            weight += 1.0
    return total / weight if weight else math.nan, weight


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(5, 400),
    seed=st.integers(0, 2**16),
    splits=st.integers(1, 12),
)
def test_rolling_15min_mean_matches_loop_oracle_whatever_the_arrival_order(
    n: int, seed: int, splits: int
) -> None:
    norms, alert_norms = load_norms("default"), load_alert_norms("default")
    rng = np.random.default_rng(seed)
    times = np.sort(rng.uniform(0.0, 1500.0, n)) + T0
    values = rng.lognormal(1.0, 1.0, n)
    order = rng.permutation(n)  # arrival order differs from sample order
    state, _, slot = _state(norms, alert_norms)
    for part in np.array_split(order, splits):
        b = BatchBuilder()
        b.channel(slot, times[part], values[part], 1.0, np.ones(part.size, bool), T0)
        evaluate(state, b.build(), T0)
    t_end = float(times.max())
    wsum, w = state.bins.window_sums(np.array([slot]), np.array([t_end]), 900.0)
    want, want_w = _oracle_mean(times, values, t_end, alert_norms.bin_s, 900.0)
    assert w[0] == pytest.approx(want_w)
    assert wsum[0] / w[0] == pytest.approx(want, rel=1e-9)


def test_projected_noise_overexposure_warns_before_the_limit_is_reached(
    norms: Norms, alert_norms: AlertNorms
) -> None:
    state, _, slot = _state(norms, alert_norms, "noise_laeq", "dB(A)", None)
    t = np.arange(0.0, 1200.0)
    v = 90.0 + 0.5 * np.sin(t / 7.0)
    events = _of(_feed(state, slot, t, v), AlertKind.PROJECTED_EXPOSURE)
    first = events[0]
    assert first.transition == "opened"
    elapsed = first.at_s - T0
    # LEX,8h of what has been measured so far is still far below 80 dB(A)
    so_far = 10 * math.log10(elapsed * 10**9.0 / 28800.0)
    assert so_far < 80.0
    assert first.value == pytest.approx(90.0, abs=0.3)  # 90 dB(A) for the whole shift
    assert first.severity is Severity.HIGH
    limit = alert_norms.noise_lex8h_levels_db[-1]
    assert first.threshold == limit
    # The limit needs 28800·10^(limit/10) of sound exposure, at 10^9 per second
    assert first.time_left_s == pytest.approx(28800 * 10 ** ((limit - 90) / 10) - elapsed, rel=0.02)
    assert "LEX,8h" in first.message
    assert "dB(A)" in first.message


def _feed_every(state: DetectorState, slot: int, gaps: list[float], interval: float) -> float:
    """One one-sample message of ``slot`` after each of ``gaps`` (s); returns the last time."""
    t = T0
    for gap in gaps:
        t += gap
        b = BatchBuilder()
        b.channel(slot, np.array([t]), np.array([1.0]), interval, np.ones(1, bool), t)
        evaluate(state, b.build(), t)
    return t


@pytest.mark.parametrize("interval", [1.0, 5.0, 20.0])
def test_silent_sensor_is_flagged_after_its_intervals_or_the_floor(
    norms: Norms, alert_norms: AlertNorms, interval: float
) -> None:
    state, _dev, slot = _state(norms, alert_norms)
    last = _feed_every(state, slot, [interval] * 10, interval)
    factor, floor = alert_norms.silence_interval_factor, alert_norms.silence_min_s
    assert factor < 2.0
    assert floor > 2.0
    # A slow sensor is flagged within two of its intervals, a fast one after the floor.
    limit = max(factor * interval, floor)
    _, before = evaluate(state, BatchBuilder().build(), last + limit - 0.1)
    assert not before
    _, after = evaluate(state, BatchBuilder().build(), last + limit + 0.1)
    (silent,) = after
    assert silent.kind is AlertKind.SENSOR_SILENT
    assert silent.threshold == pytest.approx(limit)
    assert silent.unit == "s"
    # it reports again: resolved
    b = BatchBuilder()
    t = last + limit + 1.0
    b.channel(slot, np.array([t]), np.array([1.0]), interval, np.ones(1, bool), t)
    _, back = evaluate(state, b.build(), t)
    assert [e.transition for e in back] == ["resolved"]


def test_a_1_hz_sensor_whose_messages_come_2_s_apart_at_times_is_not_silent(
    norms: Norms, alert_norms: AlertNorms
) -> None:
    """An agent that samples at 1 Hz on one timer and publishes on another sends a message 2 s
    after the last now and then, and the network delays some more than others: a live sensor."""
    state, _dev, slot = _state(norms, alert_norms)
    sample_t = T0 + np.cumsum([1.0, 1.0, 2.0, 1.0, 0.9, 2.1, 1.0, 1.0, 2.0, 1.0] * 6)
    arrival = sample_t + np.resize([0.05, 0.6, 0.1], sample_t.size)
    events: list[AlertEvent] = []
    clock = float(arrival[0])
    for t, at in zip(sample_t.tolist(), arrival.tolist(), strict=True):
        while clock + 0.25 < at:  # the engine's clock checks while it waits
            clock += 0.25
            events += evaluate(state, BatchBuilder().build(), clock)[1]
        clock = at
        b = BatchBuilder()
        b.channel(slot, np.array([t]), np.array([1.0]), 1.0, np.ones(1, bool), at)
        events += evaluate(state, b.build(), at)[1]
    assert state.interval[slot] > 1.0  # the 2-s gaps count in the learned interval
    assert [e for e in events if e.kind is AlertKind.SENSOR_SILENT] == []


def test_an_offline_device_raises_offline_not_silence(
    norms: Norms, alert_norms: AlertNorms
) -> None:
    state, dev, slot = _state(norms, alert_norms)
    for i in range(5):
        b = BatchBuilder()
        b.channel(slot, np.array([T0 + i]), np.array([1.0]), 1.0, np.ones(1, bool), T0 + i)
        evaluate(state, b.build(), T0 + i)
    b = BatchBuilder()
    b.status(dev, online=False)
    _, events = evaluate(state, b.build(), T0 + 5)
    _, later = evaluate(state, BatchBuilder().build(), T0 + 60)
    assert [e.kind for e in events + later] == [AlertKind.DEVICE_OFFLINE]
    b = BatchBuilder()
    b.status(dev, online=True)
    _, back = evaluate(state, b.build(), T0 + 61)
    assert [(e.kind, e.transition) for e in back if e.kind is AlertKind.DEVICE_OFFLINE] == [
        (AlertKind.DEVICE_OFFLINE, "resolved")
    ]


def test_dedupe_and_sequence_gaps(norms: Norms, alert_norms: AlertNorms) -> None:
    state, dev, _ = _state(norms, alert_norms)
    assert [admit(state, dev, s) for s in (10, 11, 11, 13)] == ["new", "new", "duplicate", "new"]
    grace = alert_norms.kinds[AlertKind.SEQUENCE_GAP].min_duration_s
    _, first = evaluate(state, BatchBuilder().build(), T0)
    _, waited = evaluate(state, BatchBuilder().build(), T0 + grace)
    assert not first
    (gap,) = waited
    assert gap.kind is AlertKind.SEQUENCE_GAP
    assert gap.value == 1.0
    assert admit(state, dev, 12) == "new"  # the late message arrives
    clear_s = alert_norms.kinds[AlertKind.SEQUENCE_GAP].clear_duration_s
    evaluate(state, BatchBuilder().build(), T0 + grace + 1)
    _, cleared = evaluate(state, BatchBuilder().build(), T0 + grace + 1 + clear_s)
    assert [e.transition for e in cleared] == ["resolved"]
    window = alert_norms.sequence_window
    assert admit(state, dev, 13 - window) == "old"
    assert admit(state, dev, 0 if 13 - 4 * window > 0 else 13 + 5 * window) == "new"


def _raise_ceiling(norms: Norms, alert_norms: AlertNorms) -> tuple[DetectorState, int, str]:
    state, _, slot = _state(norms, alert_norms)
    events = _feed(state, slot, np.arange(0.0, 5.0), np.full(5, 30.0))
    (opened,) = _of(events, AlertKind.CEILING)
    return state, slot, opened.alert_id


def test_escalation_when_nobody_acknowledges(norms: Norms, alert_norms: AlertNorms) -> None:
    state, _, ident = _raise_ceiling(norms, alert_norms)
    after = alert_norms.escalate_after_s
    # ceiling starts at critical already: escalation re-notifies without going higher
    _, events = evaluate(state, BatchBuilder().build(), T0 + 4 + after)
    (esc,) = events
    assert esc.transition == "escalated"
    assert esc.alert_id == ident
    assert esc.severity is Severity.CRITICAL
    assert esc.escalations == 1
    state2, _, slot = _state(norms, alert_norms)
    events = _feed(state2, slot, np.arange(0.0, 20.0), np.full(20, 9.0))
    (pre,) = [e for e in events if e.transition == "opened"]
    assert pre.severity is Severity.WARNING
    sev: list[Severity] = [pre.severity]
    for i in range(1, 5):
        _, ev = evaluate(state2, BatchBuilder().build(), pre.now_s + i * after)
        sev += [e.severity for e in ev if e.alert_id == pre.alert_id]
    assert (
        sev
        == [Severity.WARNING, Severity.HIGH, Severity.CRITICAL][: 1 + alert_norms.max_escalations]
    )


def test_acknowledge_stops_escalation_and_resolve_by_person_rearms(
    norms: Norms, alert_norms: AlertNorms
) -> None:
    state, slot, ident = _raise_ceiling(norms, alert_norms)
    _, ack = acknowledge(state, ident, T0 + 10, actor="aigerim", comment="ventilating")
    assert (ack.state, ack.actor, ack.comment) == ("acknowledged", "aigerim", "ventilating")
    _, events = evaluate(state, BatchBuilder().build(), T0 + 10 * alert_norms.escalate_after_s)
    assert not events
    with pytest.raises(TransitionError):
        acknowledge(state, ident, T0 + 11, actor="x", comment=None)
    _, res = resolve(state, ident, T0 + 12, actor="aigerim", comment="sensor moved")
    assert (res.state, res.reason) == ("resolved", "by person")
    # still above the ceiling: no new alert until it has cleared once
    assert not _of(_feed(state, slot, np.arange(20.0, 30.0), np.full(10, 30.0)), AlertKind.CEILING)
    _feed(state, slot, np.arange(30.0, 40.0), np.full(10, 1.0))
    again = _of(_feed(state, slot, np.arange(40.0, 45.0), np.full(5, 30.0)), AlertKind.CEILING)
    assert [e.transition for e in again] == ["opened"]
    assert again[0].alert_id != ident


def test_transition_rules() -> None:
    assert next_state("open", "acknowledge") == "acknowledged"
    assert next_state("acknowledged", "resolve") == "resolved"
    assert next_state("open", "resolve") == "resolved"
    for current, action in (("resolved", "resolve"), ("acknowledged", "acknowledge")):
        with pytest.raises(TransitionError):
            next_state(current, action)  # type: ignore[arg-type]


def test_trend_warns_before_the_limit_with_time_left(norms: Norms, alert_norms: AlertNorms) -> None:
    state, _, slot = _state(norms, alert_norms)
    rng = np.random.default_rng(5)
    t = np.arange(0.0, 1500.0)
    v = 1.0 + t * (6.0 / 1500.0) + 0.05 * rng.standard_normal(t.size)  # 0.24 mg/m³ per min
    events = _of(_feed(state, slot, t, v), AlertKind.TREND)
    first = events[0]
    assert first.transition == "opened"
    assert first.value is not None
    assert first.value < 10.0
    assert first.time_left_s is not None
    assert first.time_left_s == pytest.approx((10.0 - first.value) / (6.0 / 1500.0), rel=0.15)
    assert first.time_left_s <= alert_norms.trend_horizon_s


def test_flatline_and_out_of_range(norms: Norms, alert_norms: AlertNorms) -> None:
    state, _, slot = _state(norms, alert_norms)
    t = np.arange(0.0, 1000.0)
    events = _feed(state, slot, t, np.full(t.size, 3.2))
    (flat,) = _of(events, AlertKind.FLATLINE)
    assert flat.value == 3.2
    zero_state, _, zslot = _state(norms, alert_norms)
    assert not _of(_feed(zero_state, zslot, t, np.zeros(t.size)), AlertKind.FLATLINE)
    v = np.linspace(1, 2, 100)
    v[50] = np.nan
    events = _of(_feed(state, slot, t[:100] + 2000, v), AlertKind.OUT_OF_RANGE)
    assert [e.transition for e in events] == ["opened"]
    later = _of(
        _feed(state, slot, t[:10] + 2050 + alert_norms.out_of_range_window_s + 20, v[:10]),
        AlertKind.OUT_OF_RANGE,
    )
    assert [e.transition for e in later] == ["resolved"]


def test_calibration_overdue_on_the_clock(norms: Norms, alert_norms: AlertNorms) -> None:
    state, _, _ = _state(norms, alert_norms, calibration_due_s=T0 + 86400)
    _, before = evaluate(state, BatchBuilder().build(), T0)
    _, after = evaluate(state, BatchBuilder().build(), T0 + 3 * 86400)
    assert not before
    (due,) = after
    assert due.kind is AlertKind.CALIBRATION_OVERDUE
    assert due.value == pytest.approx(2.0)


def test_ppm_sensor_thresholds_are_converted(norms: Norms, alert_norms: AlertNorms) -> None:
    state, _, slot = _state(norms, alert_norms, unit="ppm")
    th = state.thresholds[slot]
    assert th.short_term == pytest.approx(10.0 * 24.04 / 34.081)
    assert th.ceiling == pytest.approx(2 * th.short_term)


@settings(max_examples=30, deadline=None)
@given(
    values=st.lists(st.floats(0.0, 40.0, allow_nan=False), min_size=1, max_size=300),
    per_batch=st.integers(1, 20),
)
def test_at_most_one_open_alert_per_sensor_and_kind(values: list[float], per_batch: int) -> None:
    norms, alert_norms = load_norms("default"), load_alert_norms("default")
    state, _, slot = _state(norms, alert_norms)
    v = np.array(values)
    events = _feed(state, slot, np.arange(float(v.size)) * 3.0, v, per_batch=per_batch)
    open_now: Counter[AlertKind] = Counter()
    for e in events:
        if e.transition == "opened":
            open_now[e.kind] += 1
            assert open_now[e.kind] == 1
        elif e.transition == "resolved":
            open_now[e.kind] -= 1
            assert open_now[e.kind] == 0
    # and the ceiling can only be open when some sample was above it
    if any(e.kind is AlertKind.CEILING for e in events):
        assert max(values) > 20.0


@settings(max_examples=examples(5, 2), deadline=None)
@given(seed=st.integers(0, 2**16))
def test_events_do_not_depend_on_how_samples_are_batched(seed: int) -> None:
    norms, alert_norms = load_norms("default"), load_alert_norms("default")
    t, v = _leak(seed)
    runs = []
    for per_batch in (3, 17, 60):
        state, _, slot = _state(norms, alert_norms)
        runs.append(
            [
                (e.kind, e.transition, e.alert_id)
                for e in _feed(state, slot, t[::3], v[::3], per_batch=per_batch, period_s=3.0)
                if e.transition in ("opened", "resolved")
                and e.kind in (AlertKind.SHORT_TERM, AlertKind.CEILING)
            ]
        )

    # Batching moves evaluation points by less than a batch, so each kind opens and resolves
    # the same times in the same order (transitions of different kinds inside one batch come
    # in the detectors' order, so only each kind's own sequence is compared).
    def by_kind(run: Sequence[tuple[AlertKind, str, str]]) -> dict[AlertKind, list[str]]:
        found: dict[AlertKind, list[str]] = {}
        for kind, transition, _ in run:
            found.setdefault(kind, []).append(transition)
        return found

    assert runs[0]
    for other in runs[1:]:
        assert by_kind(other) == by_kind(runs[0])


def test_alert_norms_have_sources_and_can_be_overridden(tmp_path: Path) -> None:
    a = load_alert_norms("default")
    assert a.lcpeak_ceiling_db == 137.0
    assert a.lamax_ceiling_db == 110.0
    # Kazakhstan by default: noise limit 80 dB(A), hand-arm 2.0 m/s² (the class-2 edge).
    assert a.noise_lex8h_levels_db == (77.0, 80.0)
    assert a.hand_arm_levels_m_s2 == (1.6, 2.0)
    assert "ҚР ДСМ-15" in a.sources["alerts.projection.noise_lex8h_db"]
    # The EU action and limit values stay available as the 'eu' profile.
    eu = load_alert_norms("eu")
    assert eu.noise_lex8h_levels_db == (80.0, 85.0)
    assert eu.hand_arm_levels_m_s2 == (2.5, 5.0)
    assert "2003/10/EC" in eu.sources["alerts.projection.noise_lex8h_db"]
    assert "137" in a.sources["alerts.ceiling.noise_lcpeak_db"]
    assert all(v for v in a.sources.values())
    profile = tmp_path / "acme.toml"
    profile.write_text(
        'extends = "default"\n[sources]\nacme = "ACME rule 7"\n'
        '[alerts.ceiling]\ngas_pdk_max_multiple = { value = 1.0, source = "acme" }\n',
        encoding="utf-8",
    )
    acme = load_alert_norms(profile)
    assert acme.gas_ceiling_pdk_max_multiple == 1.0
    assert acme.sources["alerts.ceiling.gas_pdk_max_multiple"] == "ACME rule 7"
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'extends = "default"\n[alerts.engine]\nbin_s = { value = 0.0, source = "ew_default" }\n',
        encoding="utf-8",
    )
    with pytest.raises(NormsError):
        load_alert_norms(bad)


def test_thresholds_come_from_the_profile(norms: Norms, alert_norms: AlertNorms) -> None:
    state = new_state(norms, alert_norms)
    add_subject(state, SubjectSpec(enterprise="e", device="d"))

    def th(quantity: str, unit: str, substance: str | None = None):  # type: ignore[no-untyped-def]
        slot = add_subject(
            state,
            SubjectSpec(
                enterprise="e",
                device="d",
                sensor=f"d.{quantity}.{unit}",
                quantity=quantity,
                unit=unit,
                substance=substance,
            ),
        )
        return state.thresholds[slot]

    assert th("noise_lcpeak", "dB(C)").ceiling == 137.0
    assert th("noise_lamax", "dB(A)").ceiling == 110.0
    assert th("noise_laeq", "dB(A)").projection_levels == (77.0, 80.0)
    assert th("vib_hav", "m/s2").projection_levels == (1.6, 2.0)
    z_limit = th("vib_wbv_z", "m/s2").projection_levels[1]
    assert z_limit == pytest.approx(1e-6 * 10 ** (115 / 20))  # class-2 edge 115 dB ≈ 0.56 m/s²
    # X/Y: A(8) carries k = 1.4, so the limit on it is 1.4 × the published 112 dB (≈ 0.40 m/s²).
    x = th("vib_wbv_x", "m/s2")
    assert x.projection_k == pytest.approx(1.4)
    assert x.projection_levels[1] == pytest.approx(1.4 * 1e-6 * 10 ** (112 / 20))
    lel = th("gas", "%LEL", "CH4")
    assert (lel.ceiling, lel.pre) == (20.0, 10.0)
    dust = th("dust", "mg/m3", "silica_10_70")
    assert math.isnan(dust.ceiling)
    assert dust.projection_levels == (pytest.approx(1.6), 2.0)
    assert math.isnan(th("gas", "mg/m3", "unobtainium").short_term)
    co = th("gas", "mg/m3", "CO")
    assert (co.ceiling, co.short_term, co.pre) == (40.0, 20.0, 16.0)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(1, 300))
def test_seeding_from_bin_aggregates_equals_adding_the_samples(seed: int, n: int) -> None:
    """What a restart rebuilds from stored sums is what the live state had."""
    norms, alert_norms = load_norms("default"), load_alert_norms("default")
    rng = np.random.default_rng(seed)
    times = T0 + 20_000 + np.sort(rng.uniform(0, 1200, n))
    values = rng.uniform(60, 100, n)  # noise levels: linear space is 10^(L/10)
    live, _, slot = _state(norms, alert_norms, "noise_laeq", "dB(A)", None)
    b = BatchBuilder()
    b.channel(slot, times, values, 2.0, np.ones(n, bool), float(times[-1]))
    warm(live, b.build())
    seeded, _, slot2 = _state(norms, alert_norms, "noise_laeq", "dB(A)", None)
    bins = np.floor(times / alert_norms.bin_s) * alert_norms.bin_s
    keys = np.unique(bins)
    group = [bins == k for k in keys]
    seed_state(
        seeded,
        np.full(keys.size, slot2),
        keys,
        np.array([2.0 * np.sum(10 ** (values[g] / 10)) for g in group]),
        np.array([2.0 * g.sum() for g in group]),
        np.array([values[g].min() for g in group]),
        np.array([values[g].max() for g in group]),
    )
    end = np.array([times[-1]])
    for span in (300.0, 900.0):
        a = live.bins.window_sums(np.array([slot]), end, span)
        c = seeded.bins.window_sums(np.array([slot2]), end, span)
        assert c[0][0] == pytest.approx(a[0][0], rel=1e-9)
        assert c[1][0] == pytest.approx(a[1][0])
    assert seeded.shift_sum[slot2] == pytest.approx(live.shift_sum[slot], rel=1e-9)
    assert seeded.shift_w[slot2] == pytest.approx(live.shift_w[slot])
    lo, hi, _, _ = seeded.bins.window_extremes(np.array([slot2]), end, 900.0)
    lo2, hi2, _, _ = live.bins.window_extremes(np.array([slot]), end, 900.0)
    assert (lo[0], hi[0]) == (lo2[0], hi2[0])


def test_oxygen_deficiency_raises_the_first_then_the_second_low_alarm(
    norms: Norms, alert_norms: AlertNorms
) -> None:
    """A four-gas detector's O2 channel (% vol): first and second low alarms, enrichment high."""
    first, second = alert_norms.oxygen_low_pct_vol
    state, _, slot = _state(norms, alert_norms, "gas", "%vol", "O2")
    t = np.arange(0.0, 600.0)
    # 20.9 % for 2 min, then down to between the alarms, then below the second, then back.
    v = np.select(
        [t < 120, t < 240, t < 360],
        [20.9, (first + second) / 2, second - 1.0],
        20.9,
    )
    events = _feed(state, slot, t, v)
    pre = _of(events, AlertKind.PRE_FLOOR)
    floor = _of(events, AlertKind.FLOOR)
    assert pre[0].transition == "opened"
    assert T0 + 120 <= pre[0].at_s < T0 + 130
    assert pre[0].threshold == first
    assert pre[0].severity is alert_norms.kinds[AlertKind.PRE_FLOOR].severity
    assert floor[0].transition == "opened"
    assert T0 + 240 <= floor[0].at_s < T0 + 250
    assert floor[0].value == pytest.approx(second - 1.0)
    assert floor[0].severity is Severity.CRITICAL
    assert "below the second oxygen alarm" in floor[0].message
    # Back at 20.9 %: both resolve once clear for their clear duration.
    assert {e.transition for e in floor} >= {"opened", "resolved"}
    assert {e.transition for e in pre} >= {"opened", "resolved"}
    assert not _of(events, AlertKind.CEILING)
    # Enrichment: above the high alarm is a ceiling.
    state, _, slot = _state(norms, alert_norms, "gas", "%vol", "O2")
    high = _feed(state, slot, t[:60], np.full(60, alert_norms.oxygen_high_pct_vol + 1.0))
    (opened,) = [e for e in _of(high, AlertKind.CEILING) if e.transition == "opened"]
    assert opened.threshold == alert_norms.oxygen_high_pct_vol
    assert not _of(high, AlertKind.FLOOR)


def test_methane_by_volume_has_two_alarm_levels(norms: Norms, alert_norms: AlertNorms) -> None:
    first, second = alert_norms.methane_pct_vol
    state, _, slot = _state(norms, alert_norms, "gas", "%vol", "CH4")
    t = np.arange(0.0, 300.0)
    v = np.where(t < 100, 0.2, np.where(t < 200, (first + second) / 2, second + 0.5))
    events = _feed(state, slot, t, v)
    pre = [e for e in _of(events, AlertKind.PRE_EXCEEDANCE) if e.transition == "opened"]
    ceiling = [e for e in _of(events, AlertKind.CEILING) if e.transition == "opened"]
    assert pre
    assert pre[0].threshold == first
    assert pre[0].at_s >= T0 + 100
    assert ceiling
    assert ceiling[0].threshold == second
    assert ceiling[0].at_s >= T0 + 200
    assert not _of(events, AlertKind.FLOOR)
