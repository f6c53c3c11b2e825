"""The device-side audio pieces on their own: streaming features, resampling, WAV decoding, detection."""

import numpy as np
import pytest

from edge.runtime.audio import features
from edge.runtime.audio.detector import Detector
from edge.runtime.audio.resample import Resampler, convert
from edge.runtime.audio.streaming import StreamingLogMel
from edge.runtime.audio.wavfile import WavError, WavReader
from tests import wavs

FEATURE_TOL = 1e-5  # float32 rounding of the same sums in another order


@pytest.mark.parametrize("hop", [160, 800, 1600, 4000])
def test_streaming_features_equal_whole_window_features(hop):
    x = np.random.default_rng(hop).standard_normal(40000).astype(np.float32) * 0.1
    x[10000:14000] *= 20  # a loud burst, so the window is not stationary
    stream = StreamingLogMel()
    for end in range(hop, len(x) + 1, hop):
        got = stream.push(x[end - hop : end])
        window = np.concatenate([np.zeros(features.CLIP_SAMPLES, np.float32), x[:end]])[-features.CLIP_SAMPLES :]
        if end % 4000 == 0 or end < 2 * hop:
            np.testing.assert_allclose(got, features.log_mel(window)[None], atol=FEATURE_TOL)
    assert got.shape == features.INPUT_SHAPE


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_resampler_matches_a_reference_and_is_block_size_independent(rate):
    t = np.arange(rate * 2) / rate
    x = (0.5 * np.sin(2 * np.pi * 440 * t) + 0.3 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)
    whole = Resampler(rate, 16000)(x)
    r = Resampler(rate, 16000)
    blocks = np.concatenate([r(x[i : i + 777]) for i in range(0, len(x), 777)])
    assert len(whole) == len(blocks) == 32000
    np.testing.assert_array_equal(whole, blocks)
    shift = r.delay / rate
    tt = np.arange(len(whole)) / 16000 - shift
    ref = 0.5 * np.sin(2 * np.pi * 440 * tt) + 0.3 * np.sin(2 * np.pi * 3000 * tt)
    assert np.abs(whole[300:-300] - ref[300:-300]).max() < 1e-3  # -60 dB of full scale


def test_resampler_removes_what_16k_cannot_hold():
    t = np.arange(48000) / 48000
    tone = np.sin(2 * np.pi * 12000 * t).astype(np.float32)  # would alias to 4 kHz
    assert np.abs(Resampler(48000, 16000)(tone)[500:-500]).max() < 1e-3


@pytest.mark.parametrize("rate,new_rate", [(8000, 16000), (22050, 16000), (24000, 16000), (48000, 16000),
                                           (16500, 15200)])
def test_convert_is_the_stream_filter_without_its_delay(rate, new_rate):
    """A whole clip (training's synthetic voices): aligned in time with its source and of the right length."""
    t = np.arange(int(rate * 1.3)) / rate
    x = (0.5 * np.sin(2 * np.pi * 440 * t) + 0.3 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)
    y = convert(x, rate, new_rate)
    assert len(y) == round(len(x) * new_rate / rate)
    tt = np.arange(len(y)) / new_rate
    ref = 0.5 * np.sin(2 * np.pi * 440 * tt) + 0.3 * np.sin(2 * np.pi * 3000 * tt)
    assert np.abs(y[300:-300] - ref[300:-300]).max() < 1e-2  # -40 dB of full scale, no lag
    if rate > 1.3 * new_rate:  # a tone the output cannot hold is removed, not folded back
        high = np.sin(2 * np.pi * 0.45 * rate * t).astype(np.float32)
        assert np.abs(convert(high, rate, new_rate)[300:-300]).max() < 1e-3


@pytest.mark.parametrize("bits,floating", [(8, False), (16, False), (24, False), (32, False), (32, True),
                                           (64, True)])
def test_wav_reader_decodes_every_format(tmp_path, bits, floating):
    rng = np.random.default_rng(bits)
    x = np.clip(rng.standard_normal((5000, 2)) * 0.3, -0.99, 0.99)
    path = wavs.write(tmp_path / "x.wav", x, 44100, bits, floating)
    r = WavReader(path)
    got = np.concatenate(list(r.blocks(1234)))
    r.close()
    assert (r.rate, r.channels, got.shape) == (44100, 2, (5000, 2))
    assert np.abs(got - x).max() <= 1.0 / 2 ** (bits - 1) + 1e-7


def test_wav_reader_reads_another_programs_output_from_memory(tmp_path):
    """A TTS engine's stdout (training's negatives): a 'data' size larger than what came is read to the end."""
    import io

    x = np.linspace(-0.5, 0.5, 3000)
    data = bytearray(wavs.write(tmp_path / "x.wav", x, 22050).read_bytes())
    data[40:44] = (0x7FFFFFFF).to_bytes(4, "little")  # espeak-ng --stdout cannot know the length
    r = WavReader(io.BytesIO(bytes(data)), "espeak-ng output")
    got = r.read_all()
    assert (r.rate, got.shape) == (22050, (3000, 1))
    assert np.abs(got[:, 0] - x).max() <= 1 / 32768
    with pytest.raises(WavError, match="^espeak-ng output: not a WAV"):
        WavReader(io.BytesIO(b"espeak: voice not found"), "espeak-ng output")


@pytest.mark.parametrize("content,words", [(b"", "no RIFF/WAVE header"), (b"RIFF\0\0\0\0WAVEjunk", "no 'fmt '"),
                                           (b"ID3\x04" + bytes(100), "no RIFF/WAVE header")])
def test_wav_reader_names_the_file_and_the_problem(tmp_path, content, words):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(content)
    with pytest.raises(WavError, match=words) as e:
        WavReader(bad)
    assert str(bad) in str(e.value)


def _scores(labels, track):
    """[steps, classes] scores: `track` maps step ranges to (label, score), everything else is _silence_."""
    s = np.zeros((60, len(labels)), np.float32)
    s[:, labels.index("_silence_")] = 1
    for (a, b), (label, p) in track.items():
        s[a:b] = (1 - p) / (len(labels) - 1)
        s[a:b, labels.index(label)] = p
    return s


LABELS = ["yes", "no", "_silence_", "_unknown_"]


def _run(det, scores, hop_s=0.1):
    return [d for i, row in enumerate(scores) if (d := det.step(row, (i + 1) * hop_s))]


def test_one_word_lingering_in_the_window_gives_one_detection():
    # a word stays in a 1 s window for ~10 hops; the score dips in between
    scores = _scores(LABELS, {(10, 14): ("yes", 0.9), (14, 15): ("yes", 0.6), (15, 21): ("yes", 0.85)})
    hits = _run(Detector(LABELS, 0.7, smooth=3, refractory_s=1.0), scores)
    assert [(h.label, round(h.t, 1)) for h in hits] == [("yes", 1.3)]


def test_two_words_apart_give_two_detections_and_unknown_never_fires():
    scores = _scores(LABELS, {(5, 12): ("yes", 0.9), (30, 38): ("no", 0.95), (45, 55): ("_unknown_", 0.99)})
    hits = _run(Detector(LABELS, 0.7), scores)
    assert [h.label for h in hits] == ["yes", "no"]


def test_per_class_threshold():
    scores = _scores(LABELS, {(5, 12): ("yes", 0.75), (30, 38): ("no", 0.75)})
    hits = _run(Detector(LABELS, 0.7, {"yes": 0.8}), scores)
    assert [h.label for h in hits] == ["no"]
