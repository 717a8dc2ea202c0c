"""Phone normalization: the E.164 fast path agrees with phonenumbers, the oracle, on every input."""

from __future__ import annotations

import random

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callstats.core.phones import (
    InvalidPhone,
    UnknownRegion,
    is_plain_valid_e164,
    normalize,
    parse_in_full,
    region_code,
)


def outcome(check: object, text: str, region: str = "US") -> str:
    """The E.164 form, or the InvalidPhone message marked as such, from `normalize` or `parse_in_full`."""
    try:
        return normalize(text, region) if check is normalize else parse_in_full(text.strip(), region)
    except InvalidPhone as exc:
        return f"invalid: {exc}"


def example_numbers() -> list[str]:
    """phonenumbers' example number of every region and number type, in E.164."""
    found = set()
    regions = set(phonenumbers.SUPPORTED_REGIONS)
    for region in regions:
        for kind in range(12):
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                found.add(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        number = phonenumbers.example_number_for_non_geo_entity(code)
        if number is not None:
            found.add(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    return sorted(found)


def near_misses(e164: str, rng: random.Random) -> list[str]:
    """Variants of a valid number: other trailing digits, a digit more or less, a national prefix."""
    digits = e164[1:]
    variants = [e164]
    for tail in (1, 2, 4):
        variants.append("+" + digits[:-tail] + "".join(rng.choice("0123456789") for _ in range(tail)))
    variants += ["+" + digits + rng.choice("0123456789"), "+" + digits[:-1]]
    for size in (1, 2, 3):  # a national prefix (0, 1, 8, 9, 15...) right after the country code
        for prefix in ("0", "1", "8", "9", "15"):
            variants.append("+" + digits[:size] + prefix + digits[size:])
    return variants


def test_the_fast_path_agrees_with_phonenumbers_on_example_numbers_and_their_near_misses() -> None:
    """For every region's examples and thousands of variants: same E.164 or the same error message."""
    rng = random.Random(20261127)
    inputs = [variant for e164 in example_numbers() for variant in near_misses(e164, rng)]
    fast = [text for text in inputs if is_plain_valid_e164(text)]
    for text in inputs:
        assert outcome(normalize, text) == outcome(parse_in_full, text), text
    for text in fast:
        assert parse_in_full(text, "US") == text, text
    # The fast path carries most valid numbers; the rest (national prefixes, leading zeros) fall back.
    assert len(fast) > 0.5 * len(example_numbers())
    assert len(inputs) - len(fast) > len(inputs) // 3


@pytest.mark.parametrize(
    "text",
    [
        "+12122000000",  # New York
        "+16135550123",  # Canada, same country code: region by pattern
        "+18092345678",  # Dominican Republic, leading digits
        "+112122000000",  # a national prefix phonenumbers strips: +1 212...
        "+11212200000",
        "+1212200000",  # one digit short
        "+121220000000",  # one digit long
        "+10122000000",
        "+390612345678",  # Italy keeps its leading zero
        "+4402071838750",  # UK with its trunk 0, which phonenumbers strips
        "+442071838750",
        "+5491123456789",  # Argentina mobile with its 9
        "+79123456789",  # Russia and Kazakhstan share +7
        "+77012345678",
        "+80012345678",  # non-geographic (freephone)
        "+882123456789",
        "+2591234567",  # unassigned country code
        "+999123456789",
        "+0123456789",
        "+123",
        "+1",
        "+",
        "+١٢١٢٢٠٠٠٠٠٠",  # Arabic-Indic digits: phonenumbers reads them, the fast path does not
        "+1 212 200 0000",
        "  +12122000000  ",
        "212-200-0000",
    ],
)
def test_the_fast_path_agrees_with_phonenumbers_on_edge_cases(text: str) -> None:
    """Multi-region codes, national prefixes, leading zeros, unassigned codes, lengths, other scripts."""
    assert outcome(normalize, text) == outcome(parse_in_full, text)
    if is_plain_valid_e164(text):
        assert parse_in_full(text, "US") == text


@settings(max_examples=3000, deadline=None)
@given(st.from_regex(r"\+[0-9]{1,18}", fullmatch=True), st.sampled_from(["US", "GB", "DE", "IN", "BR"]))
def test_the_fast_path_agrees_with_phonenumbers_on_random_digits(text: str, region: str) -> None:
    """Any '+' and digits, under any default region: same E.164 or the same error message."""
    assert outcome(normalize, text, region) == outcome(parse_in_full, text, region)


@settings(max_examples=2000, deadline=None)
@given(st.sampled_from(example_numbers()), st.integers(0, 10**6))
def test_the_fast_path_agrees_with_phonenumbers_around_valid_numbers(e164: str, seed: int) -> None:
    """Hypothesis-chosen near misses of valid numbers: same E.164 or the same error message."""
    for text in near_misses(e164, random.Random(seed)):
        assert outcome(normalize, text) == outcome(parse_in_full, text), text


# Issue 8: the extension is part of a contact's identity, written as RFC 3966's ";ext=".

EXTENSION_FORMS = [
    "608-555-0147 x12", "608-555-0147 X12", "608-555-0147 x 12", "608-555-0147x12", "608-555-0147-x12",
    "608-555-0147 ext 12", "608-555-0147 EXT 12", "608-555-0147 ext. 12", "608-555-0147 Ext. 12",
    "608-555-0147 ext12", "608-555-0147,12", "608-555-0147;ext=12", "608-555-0147 #12",
    "608-555-0147 extension 12", "(608) 555-0147 x12", "+1 608 555 0147 x12", "+16085550147;ext=12",
    "tel:+1-608-555-0147;ext=12", " 608.555.0147 ext. 12 ",
]  # fmt: skip


@pytest.mark.parametrize("text", EXTENSION_FORMS)
def test_every_extension_form_gives_e164_plus_ext(text: str) -> None:
    """x, ext, ext., -x, `,`, `;ext=`, `#`, extension, any case: one identity, `+16085550147;ext=12`."""
    assert normalize(text, "US") == "+16085550147;ext=12"
    parsed = phonenumbers.parse(text, "US")  # the oracle: phonenumbers' own reading of the extension
    assert parsed.extension == "12"


@pytest.mark.parametrize("extension", ["1", "11", "1234", "12345678901234567890"])
def test_extensions_differ_by_their_digits(extension: str) -> None:
    """Different extensions of one number are different identities; no extension is a third."""
    with_ext = normalize(f"608-555-0147 ext. {extension}", "US")
    assert with_ext == f"+16085550147;ext={extension}"
    assert with_ext != normalize("608-555-0147", "US") == "+16085550147"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("608-555-0147;ext=123456789012345678901", "extension over 20 digits"),
        ("608-555-0147 x1234567890", "too long"),
    ],
)
def test_an_extension_too_long_is_refused(text: str, reason: str) -> None:
    """phonenumbers reads at most 20 digits after ext/;ext= and 9 after x, # or `,`: longer is refused,
    never truncated into another contact."""
    with pytest.raises(InvalidPhone, match=reason):
        normalize(text, "US")


@pytest.mark.parametrize(
    ("text", "region", "expected"),
    [
        ("2079460958", "GB", "+442079460958"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("2079460958", "US", "+12079460958"),
        ("020 7946 0958 x5", "GB", "+442079460958;ext=5"),
    ],
)
def test_the_region_reads_national_numbers(text: str, region: str, expected: str) -> None:
    """The default region decides what a number without +country means."""
    assert normalize(text, region) == expected


@pytest.mark.parametrize(("value", "expected"), [("gb", "GB"), (" us ", "US"), ("De", "DE")])
def test_region_codes_are_upper_cased(value: str, expected: str) -> None:
    """Region codes are ISO 3166-1 alpha-2 as phonenumbers knows them, upper-cased."""
    assert region_code(value) == expected


@pytest.mark.parametrize("value", ["UK", "XX", "USA", "", "001"])
def test_unknown_regions_are_refused(value: str) -> None:
    """UK is not ISO 3166 (GB is); 001 is phonenumbers' non-geographic entity, not a region."""
    with pytest.raises(UnknownRegion):
        region_code(value)
