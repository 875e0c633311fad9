import pytest

from watchkeeper.model import (
    Matcher,
    MatchOp,
    NameValidation,
    is_valid_label_name,
    is_valid_metric_name,
    labels_from_dict,
    labels_from_key,
    series_key,
)


def test_labels_are_sorted_and_empty_values_dropped() -> None:
    labels = labels_from_dict({"job": "api", "__name__": "up", "zone": "", "a": "1"})
    assert labels == (("__name__", "up"), ("a", "1"), ("job", "api"))


def test_series_key_round_trip_with_unicode() -> None:
    labels = labels_from_dict({"__name__": "température.°C", "ville": "Zürich", "x": "ÿþ"})
    assert labels_from_key(series_key(labels)) == labels


def test_series_key_is_unambiguous() -> None:
    one = labels_from_dict({"a": "b\u00ffc"})
    two = labels_from_dict({"a": "b", "\u00ffc": "d"})
    assert series_key(one) != series_key(two)


def test_name_validation_schemes() -> None:
    assert is_valid_metric_name("http.requests/total")
    assert not is_valid_metric_name("http.requests", NameValidation.LEGACY)
    assert is_valid_metric_name("a:b_c", NameValidation.LEGACY)
    assert not is_valid_label_name("a:b", NameValidation.LEGACY)
    assert not is_valid_label_name("")
    assert not is_valid_metric_name("")


@pytest.mark.parametrize(
    ("op", "pattern", "value", "expected"),
    [
        (MatchOp.EQUAL, "a", "a", True),
        (MatchOp.NOT_EQUAL, "a", "a", False),
        (MatchOp.REGEX, "a.*", "abc", True),
        (MatchOp.REGEX, "b", "abc", False),  # fully anchored
        (MatchOp.REGEX, "a|b", "b", True),
        (MatchOp.REGEX, "a.c", "a\nc", True),  # `.` matches newline (Prometheus 3.x)
        (MatchOp.NOT_REGEX, "a.*", "abc", False),
        (MatchOp.REGEX, ".*", "", True),
        (MatchOp.REGEX, ".+", "", False),
    ],
)
def test_matcher_semantics(op: MatchOp, pattern: str, value: str, expected: bool) -> None:
    assert Matcher("x", op, pattern).matches(value) is expected


def test_bad_regex_names_the_pattern() -> None:
    with pytest.raises(ValueError, match=r"invalid regular expression '\(a'"):
        Matcher("x", MatchOp.REGEX, "(a")
