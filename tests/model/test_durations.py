import pytest

from watchkeeper.model import format_duration, parse_duration
from watchkeeper.model.durations import parse_timestamp_ms


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("0", 0),
        ("500ms", 500),
        ("15s", 15_000),
        ("1h30m", 5_400_000),
        ("15d", 15 * 86_400_000),
        ("2w", 14 * 86_400_000),
        ("1y", 365 * 86_400_000),
        ("1d2h3m4s5ms", 86_400_000 + 7_200_000 + 180_000 + 4_000 + 5),
    ],
)
def test_parse_duration(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize("text", ["", "1", "5x", "1m1h", "-5m", "1.5h", "h"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a valid duration"):
        parse_duration(text)


def test_format_duration_round_trips() -> None:
    for ms in (1, 1000, 90_000, 5_400_000, 86_400_000 * 3 + 1):
        assert parse_duration(format_duration(ms)) == ms


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1700000000", 1_700_000_000_000),
        ("1700000000.123", 1_700_000_000_123),
        ("2023-11-14T22:13:20Z", 1_700_000_000_000),
        ("2023-11-14T23:13:20+01:00", 1_700_000_000_000),
    ],
)
def test_parse_timestamp(text: str, ms: int) -> None:
    assert parse_timestamp_ms(text) == ms


@pytest.mark.parametrize("text", ["abc", "NaN", "2023-11-14T22:13:20", "Inf"])
def test_parse_timestamp_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="timestamp"):
        parse_timestamp_ms(text)
