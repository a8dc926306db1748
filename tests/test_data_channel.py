"""The telephone channel: each effect measured on the signal, plans drawn deterministically per call."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from data.channel import (
    CODECS, FRAME_SECONDS, LINE_RATE, NOISE_KINDS, ChannelConfig, ChannelPlan, add_crosstalk, add_noise,
    apply_channel, apply_level, band_limit, codec_roundtrip, conceal_losses, draw_channel_plan, lost_frames,
    make_noise,
)

RATE = LINE_RATE
STEP = round(FRAME_SECONDS * RATE)
#: The chain with every optional effect off: band-limit and μ-law only.
PLAIN = ChannelPlan(codec="mulaw", seed=7)


def db(ratio: float) -> float:
    return 10.0 * float(np.log10(ratio))


def power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x)))


def voiced_bursts(seconds: float = 3.0, on: float = 0.3, off: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """A speech stand-in: harmonics on a gliding 110-190 Hz pitch, on ``on`` s, off ``off`` s; and its on-mask."""
    t = np.arange(round(seconds * RATE)) / RATE
    pitch = 2 * np.pi * np.cumsum(150 + 40 * np.sin(2 * np.pi * 0.7 * t)) / RATE  # not periodic: alignment is unique
    tone = sum(np.sin(k * pitch + k) / k for k in range(1, 20))
    mask = (t % (on + off)) < on
    x = 0.3 * tone / np.abs(tone).max() * mask
    return x, mask


def band_energy(x: np.ndarray, low: float, high: float) -> tuple[float, float]:
    """(energy inside [low, high] Hz, energy outside it)."""
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / RATE)
    inside = (f >= low) & (f <= high)
    return float(spectrum[inside].sum()), float(spectrum[~inside].sum())


def test_band_limit_removes_energy_outside_300_3400_hz():
    white = np.random.default_rng(0).standard_normal(4 * RATE) * 0.1
    out = band_limit(white, RATE, (300.0, 3400.0))
    (in_before, out_before), (in_after, out_after) = band_energy(white, 300, 3400), band_energy(out, 300, 3400)
    assert db(out_before / out_after) >= 12.0  # everything outside the band, edges included
    beyond_before, beyond_after = band_energy(white, 250, 3500)[1], band_energy(out, 250, 3500)[1]
    assert db(beyond_before / beyond_after) >= 20.0  # 50 Hz past either edge
    assert abs(db(in_before / in_after)) < 0.5  # the pass band is kept
    # the whole chain (band-limit + μ-law) does the same to a signal at a speech-like level
    chained = apply_channel(white, RATE, PLAIN)
    assert db(beyond_before / band_energy(chained, 250, 3500)[1]) >= 20.0


@pytest.mark.parametrize("kind", NOISE_KINDS)
@pytest.mark.parametrize("snr_db", [5.0, 15.0, 25.0])
def test_noise_is_added_at_the_planned_snr(kind, snr_db):
    speech, mask = voiced_bursts()
    noise = make_noise(kind, len(speech), RATE, np.random.default_rng(1))
    noisy = add_noise(speech, noise, snr_db, RATE)
    added = noisy - speech
    measured = db(power(speech[mask]) / power(added))  # speech where it is on, noise everywhere
    assert abs(measured - snr_db) <= 1.0


def test_noises_sound_like_what_they_are_named():
    rng = np.random.default_rng(2)
    n = 4 * RATE
    spectrum = {k: np.abs(np.fft.rfft(make_noise(k, n, RATE, rng))) ** 2 for k in NOISE_KINDS}
    f = np.fft.rfftfreq(n, 1 / RATE)
    for kind, mains in (("hum-50", 50), ("hum-60", 60)):
        near_harmonics = np.abs(f / mains - np.round(f / mains)) * mains < 2.0
        assert spectrum[kind][near_harmonics].sum() > 0.99 * spectrum[kind].sum()
    street, babble = spectrum["street"], spectrum["babble"]
    assert street[f < 300].sum() > 0.5 * street.sum()  # traffic rumble is low
    assert babble[(f > 100) & (f < 1500)].sum() > 0.6 * babble.sum()  # voices live where speech does
    # babble comes and goes at syllable rate; hum is steady
    levels = {k: np.sqrt(np.mean(make_noise(k, n, RATE, rng).reshape(-1, STEP) ** 2, axis=1))
              for k in ("babble", "hum-50")}
    assert np.std(levels["babble"]) / np.mean(levels["babble"]) > 0.1
    assert np.std(levels["hum-50"]) / np.mean(levels["hum-50"]) < 0.05


def test_level_drift_and_clipping_at_the_planned_level():
    t = np.arange(4 * RATE) / RATE
    sine = 0.5 * np.sin(2 * np.pi * 440 * t)
    drifted = apply_level(sine, -6.0, 6.0, None)  # -6 dB at the start, 0 dB at the end
    start, end = drifted[:RATE // 4], drifted[-RATE // 4:]
    assert abs(db(power(start) / power(sine[:RATE // 4])) - -6.0) < 0.5
    assert abs(db(power(end) / power(sine[-RATE // 4:])) - 0.0) < 0.5
    clipped = apply_level(sine, 12.0, 0.0, 0.4)
    assert np.abs(clipped).max() <= 0.4 + 1e-12
    assert np.mean(np.abs(clipped) >= 0.4 - 1e-9) > 0.5  # +12 dB on a 0.5 sine: flat-topped most of the time
    assert np.abs(apply_level(sine, 12.0, 0.0, None)).max() <= 1.0  # full scale always clips
    # through the whole chain the clip level survives band-limit and codec within the filter's overshoot
    # (a band-pass rings on the clipped edges: measured 1.63x here)
    plan = replace(PLAIN, gain_db=12.0, clip_level=0.3)
    assert np.abs(apply_channel(sine, RATE, plan)).max() < 0.3 * 1.8
    assert np.abs(apply_channel(sine, RATE, replace(plan, clip_level=None))).max() > 0.6


def test_lost_frames_are_concealed_and_counted():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(10 * RATE) * 0.1
    n_frames = len(x) // STEP
    lost = lost_frames(n_frames, 0.05, 3, np.random.default_rng(4))
    assert len(lost) == round(0.05 * n_frames) == len(set(lost.tolist()))
    y = conceal_losses(x, RATE, lost)
    frames_x, frames_y = x.reshape(n_frames, STEP), y.reshape(n_frames, STEP)
    changed = np.flatnonzero(np.any(frames_x != frames_y, axis=1))
    assert changed.tolist() == lost.tolist()
    lost_set = set(lost.tolist())
    first = next(k for k in lost if k - 1 not in lost_set and k > 0)
    half = STEP // 2  # the first 10 ms of an erasure repeat the last frame heard, at full level
    assert np.array_equal(frames_y[first, :half], frames_x[first - 1, :half])
    # 60 ms into an erasure the line is silent (three lost frames in a row)
    y3 = conceal_losses(x, RATE, np.array([10, 11, 12, 13]))
    assert np.all(y3[13 * STEP:14 * STEP] == 0.0) and np.any(y3[12 * STEP:13 * STEP] != 0.0)


def test_the_chain_drops_the_planned_number_of_frames():
    x = np.random.default_rng(5).standard_normal(6 * RATE) * 0.1
    plan = replace(PLAIN, loss_rate=0.06, loss_burst_frames=3)
    clean, lossy = apply_channel(x, RATE, replace(plan, loss_rate=0.0)), apply_channel(x, RATE, plan)
    n_frames = len(x) // STEP
    differs = np.any(clean.reshape(n_frames, STEP) != lossy.reshape(n_frames, STEP), axis=1)  # 6 s: whole frames
    assert int(differs.sum()) == round(plan.loss_rate * n_frames)


def test_agent_crosstalk_in_the_caller_track_at_the_planned_level():
    rng = np.random.default_rng(6)
    agent = rng.standard_normal(3 * RATE) * 0.1
    caller = np.zeros_like(agent)
    out = add_crosstalk(caller, agent, RATE, -20.0, 50.0)
    delay = round(0.05 * RATE)
    assert np.all(out[:delay] == 0.0)
    assert abs(db(power(out[delay:]) / power(agent[:-delay])) - -20.0) < 0.1
    lag = int(np.argmax(np.correlate(out, agent[:RATE], mode="valid")))
    assert lag == delay
    # through the chain: a silent caller track carries the agent at the planned level (both band-limited)
    plan = replace(PLAIN, crosstalk_db=-15.0, echo_delay_ms=0.0)
    heard = apply_channel(caller, RATE, plan, agent=agent)
    reference = apply_channel(agent, RATE, plan, line_only=True)
    assert abs(db(power(heard) / power(reference)) - -15.0) < 1.0
    assert power(apply_channel(caller, RATE, plan)) < 1e-8  # no agent track given: nothing leaks


@pytest.mark.parametrize("codec", list(CODECS))
def test_codecs_round_trip_aligned_and_lossy(codec):
    # Band-limited first, as in the chain: AMR's own high-pass shifts the phase of anything below 300 Hz.
    speech = band_limit(voiced_bursts(2.0)[0], RATE)
    out = codec_roundtrip(speech, codec)
    assert len(out) == len(speech)
    lags = np.arange(-80, 81)
    xcorr = [float(np.dot(out[80 + k:len(out) - 80 + k], speech[80:len(speech) - 80])) for k in lags]
    assert lags[int(np.argmax(xcorr))] == 0  # decoded audio lines up with the input
    error = db(power(speech) / power(out - speech))
    assert error > 30.0 if codec == "mulaw" else error < 30.0  # the compressed codecs really are lossy


def test_plans_are_drawn_per_call_and_deterministic():
    config = ChannelConfig()
    plan = draw_channel_plan("call-1", 0, config, two_channel=True)
    assert plan == draw_channel_plan("call-1", 0, config, two_channel=True)
    assert plan != draw_channel_plan("call-1", 1, config, two_channel=True)
    assert plan != draw_channel_plan("call-2", 0, config, two_channel=True)
    speech, _ = voiced_bursts(1.0)
    agent = np.roll(speech, RATE // 2)
    a = apply_channel(speech, RATE, plan, agent=agent)
    assert np.array_equal(a, apply_channel(speech, RATE, plan, agent=agent))
    plans = [draw_channel_plan(f"c{i}", 0, config) for i in range(300)]
    assert {p.codec for p in plans} == set(CODECS) and {p.noise for p in plans} == {*NOISE_KINDS, None}
    assert all(5.0 <= p.snr_db <= 25.0 for p in plans if p.snr_db is not None)
    assert 0.1 < np.mean([p.clip_level is not None for p in plans]) < 0.3  # clip_probability 0.2
    assert all(p.crosstalk_db is None for p in plans)  # a mono line has no second track to leak
    assert plan.to_json()["band_hz"] == [300.0, 3400.0]


def test_turning_one_effect_off_leaves_the_rest_of_each_line_as_drawn():
    """bench.line_effects hears the same calls with one effect removed: the other draws must not move."""
    full = ChannelConfig()
    for i in range(50):
        plan = draw_channel_plan(f"c{i}", 3, full)
        quiet = draw_channel_plan(f"c{i}", 3, replace(full, noise_probability=0.0))
        lossless = draw_channel_plan(f"c{i}", 3, replace(full, loss_probability=0.0))
        assert quiet.noise is None and quiet.snr_db is None
        assert quiet == replace(plan, noise=None, snr_db=None)
        assert lossless == replace(plan, loss_rate=0.0)


def test_bad_channel_config_names_the_field():
    for kwargs, field in (({"snr_db": (25.0, 5.0)}, "snr_db"), ({"codecs": ("opus",)}, "codecs"),
                          ({"noise_probability": 1.5}, "noise_probability"),
                          ({"loss_burst_frames": 0}, "loss_burst_frames"), ({"band_hz": (300.0, 5000.0)}, "band_hz"),
                          ({"noise_kinds": ("rain",)}, "noise_kinds"), ({"loss_rate": (0.0, 0.9)}, "loss_rate")):
        with pytest.raises(ValueError, match=field):
            ChannelConfig(**kwargs)
    with pytest.raises(ValueError, match="snr_db"):
        ChannelPlan(noise="babble")
    with pytest.raises(ValueError, match="8000"):
        apply_channel(np.zeros(1600), 16000, PLAIN)
