"""Codecs: each one's rounding error is within its stated bound, and its bytes are what it says."""
import numpy as np
import pytest

from checkpointing.codecs import CODECS, SharedEncoder, get_codec


@pytest.fixture
def values():
    rng = np.random.default_rng(0)
    return (rng.standard_normal((5, 7)) * 3).astype(np.float32)


@pytest.mark.parametrize("name, bits", [("float16", 11), ("bfloat16", 8)])
def test_half_precision_codecs_round_to_their_significant_bits(values, name, bits):
    codec = get_codec(name)
    decoded = codec.decode(codec.encode(values))
    assert decoded.dtype == values.dtype and decoded.shape == values.shape
    relative = np.abs(decoded - values) / np.abs(values)
    assert relative.max() <= 2.0 ** -bits  # round to nearest: half an ulp
    assert relative.max() > 2.0 ** -(bits + 4)  # and it is lossy, not a copy


def test_int8_error_is_at_most_half_a_step_of_its_scale(values):
    codec = get_codec("int8")
    encoded = codec.encode(values)
    q, scale = encoded.arrays
    assert q.dtype == np.int8 and scale.dtype == np.float32 and scale.shape == ()
    decoded = codec.decode(encoded)
    assert np.abs(decoded - values).max() <= float(scale) / 2 * (1 + 1e-6)
    assert np.abs(q).max() == 127


def test_bfloat16_rounds_ties_to_even():
    codec = get_codec("bfloat16")
    one = np.float32(1.0)
    ulp = np.float32(2.0 ** -7)
    tie_down = np.array([one + ulp / 2], np.float32)       # halfway to 1 + ulp: stays at 1
    tie_up = np.array([one + ulp * 1.5], np.float32)       # halfway to 1 + 2 ulp: goes up
    assert codec.decode(codec.encode(tie_down))[0] == one
    assert codec.decode(codec.encode(tie_up))[0] == one + 2 * ulp


@pytest.mark.parametrize("name", sorted(CODECS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_encoded_bytes_are_within_the_planning_bound(values, name, dtype):
    codec = get_codec(name)
    a = values.astype(dtype)
    encoded = codec.encode(a)
    assert encoded.nbytes == a.size * codec.bytes_per_number + codec.extra_bytes
    assert encoded.nbytes <= codec.bound(a.nbytes, tensors=1)
    assert codec.decode(encoded).dtype == dtype


def test_all_zero_tensor_survives_int8():
    codec = get_codec("int8")
    zeros = np.zeros((3, 4), np.float32)
    assert np.array_equal(codec.decode(codec.encode(zeros)), zeros)


def test_unknown_codec_is_named():
    with pytest.raises(ValueError, match="unknown codec 'fp8'.*'bfloat16', 'float16', 'int8'"):
        get_codec("fp8")


def test_shared_encoder_encodes_a_live_array_once():
    encode = SharedEncoder(get_codec("float16"))
    a = np.ones((2, 2), np.float32)
    first = encode(a)
    assert encode(a) is first
    assert encode(a.copy()) is not first
