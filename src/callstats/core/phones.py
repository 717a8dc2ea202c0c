"""Phone numbers: validated and normalized to a contact's identity, E.164 plus any extension. Pure."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata

from callstats.core.text import NUL, NUL_REASON

# Imports mostly send numbers already in E.164; checking those against phonenumbers' own metadata
# directly costs a tenth of parse + is_valid_number + format. Every other form, and every number this
# check does not accept, goes through phonenumbers in full, so what is accepted and every error message
# stay phonenumbers' own.
_PLAIN_E164 = re.compile(r"\+[1-9][0-9]{2,16}")

Matcher = Callable[[str], bool]


class InvalidPhone(ValueError):
    """A phone number that cannot be dialed, with the reason in words a user can act on."""


class UnknownRegion(ValueError):
    """A region code phonenumbers has no numbering plan for."""


EXTENSION = ";ext="
"""How an extension is written in a contact's identity: RFC 3966's `;ext=` (section 5.1.5)."""

# What a spreadsheet makes of a long number: 6.08555E+09 (digits lost) and 6085550147.0 (a float).
_SCIENTIFIC = re.compile(r"[+-]?[0-9]+(?:[.,][0-9]+)?[eE][+-]?[0-9]+")
_DECIMAL = re.compile(r"\+?[0-9]{6,}[.,][0-9]+")
# 2024-01-31, 31/01/2024, 1.2.24, optionally with a time: what a spreadsheet shows for a date cell.
_DATE = re.compile(r"[0-9]{1,4}[-/.][0-9]{1,2}[-/.][0-9]{1,4}(?:[ T][0-9:.]+)?")

_PARSE_ERRORS = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
    phonenumbers.NumberParseException.NOT_A_NUMBER: (
        "is not a phone number (letters or symbols where digits belong, or an extension over 20 digits)"
    ),
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too short after the international prefix",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short to be a phone number",
    phonenumbers.NumberParseException.TOO_LONG: "too long to be a phone number",
}
_LENGTH_ERRORS = {
    phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
    phonenumbers.ValidationResult.TOO_SHORT: "too short for a number of {region} (+{code})",
    phonenumbers.ValidationResult.TOO_LONG: "too long for a number of {region} (+{code})",
    phonenumbers.ValidationResult.INVALID_LENGTH: "has a length no number of {region} (+{code}) has",
    phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "is missing its area code for {region} (+{code})",
}


def region_code(value: str) -> str:
    """`value` as an ISO 3166-1 alpha-2 region phonenumbers knows (upper-cased), or UnknownRegion."""
    code = value.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise UnknownRegion(f"unknown region {value!r}: use an ISO 3166-1 alpha-2 code such as US, GB or DE")
    return code


def normalize(raw: object, default_region: str) -> str:
    """The identity of the number `raw`: E.164, plus `;ext=N` when it carries an extension.

    `raw` is the value sent (a string, or a JSON integer); a number without `+country` is read as a
    number of `default_region`. `608-555-0147 x12` in US gives `+16085550147;ext=12`; extensions
    are read by phonenumbers' parser (x, ext, ext., #, extension, `,`, `;ext=`). Raises InvalidPhone
    with a reason in words (e.g. "looks like Excel scientific notation") when it cannot be dialed.
    """
    if raw is None:
        raise InvalidPhone("phone is required")
    if isinstance(raw, float):
        raise InvalidPhone(f"has a decimal part ({raw!r}): send phone numbers as text")
    if not isinstance(raw, str | int) or isinstance(raw, bool):
        raise InvalidPhone("phone must be a string")
    text = str(raw).strip()
    if not text:
        raise InvalidPhone("phone is empty")
    if text[0] == "+" and is_plain_valid_e164(text):
        return text
    return parse_in_full(text, default_region)


def parse_in_full(text: str, default_region: str) -> str:
    """normalize() of a stripped, non-empty `text` by phonenumbers' parse, validation and format."""
    _refuse_spreadsheet_shapes(text)
    try:
        parsed = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(_PARSE_ERRORS.get(exc.error_type, "is not a phone number")) from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhone(_why_invalid(text, parsed))
    e164 = str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))
    return f"{e164}{EXTENSION}{parsed.extension}" if parsed.extension else e164


def _refuse_spreadsheet_shapes(text: str) -> None:
    """InvalidPhone when `text` is a number a spreadsheet turned into a float, digits lost or not."""
    if NUL in text:
        raise InvalidPhone(f"phone {NUL_REASON}")
    if _SCIENTIFIC.fullmatch(text):
        raise InvalidPhone(
            f"looks like Excel scientific notation ({text}): format the column as text and export again"
        )
    if _DECIMAL.fullmatch(text):
        raise InvalidPhone(f"has a decimal part ({text}): format the column as text and export again")


def _why_invalid(text: str, parsed: phonenumbers.PhoneNumber) -> str:
    """Why phonenumbers parsed `text` as `parsed` yet does not hold it valid, in words."""
    if _DATE.fullmatch(text):
        return f"looks like a date ({text}), not a phone number: format the column as text"
    region = phonenumbers.region_code_for_country_code(parsed.country_code or 0)
    reason = phonenumbers.is_possible_number_with_reason(parsed)
    template = _LENGTH_ERRORS.get(
        reason, "is not a valid number of {region} (+{code}): check the digits or add +country code"
    )
    return template.format(region=region, code=parsed.country_code)


def is_plain_valid_e164(text: str) -> bool:
    """Whether `text` is '+' and ASCII digits that phonenumbers would accept and format as `text` itself.

    False means "not known here", never "invalid": the caller then asks phonenumbers. It follows
    phonenumbers' parse (country code = the shortest known prefix, no national prefix to strip, no
    leading zero) and is_valid_number (region by leading digits or type, then any number type).
    """
    if _PLAIN_E164.fullmatch(text) is None:
        return False
    for size in (1, 2, 3):
        country_code = int(text[1 : 1 + size])
        if country_code in COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return False
    national = text[1 + size :]
    if len(national) < 2 or national[0] == "0":
        return False
    national_prefix, regions = _country_rules(country_code)
    if national_prefix is not None and national_prefix.match(national):
        return False
    for leading_digits, is_valid in regions:
        if leading_digits is None:
            if is_valid(national):
                return True
        elif leading_digits.match(national):
            return is_valid(national)
    return False


@cache
def _country_rules(
    country_code: int,
) -> tuple[re.Pattern[str] | None, list[tuple[re.Pattern[str] | None, Matcher]]]:
    """A country code's national prefix pattern and its regions' rules in phonenumbers' order."""
    regions = COUNTRY_CODE_TO_REGION_CODE[country_code]
    found = [PhoneMetadata.metadata_for_region(region, None) for region in regions]
    metadatas = [
        metadata for metadata in found if metadata is not None and metadata.country_code == country_code
    ]
    if len(metadatas) != len(regions):
        return None, []  # the non-geographic entity "001" and any odd metadata: left to phonenumbers
    rules: list[tuple[re.Pattern[str] | None, Matcher]] = []
    for metadata in metadatas:
        # With several regions, phonenumbers takes the first whose leading digits match (or, without
        # them, whose types match) and validates against that region only; with one, that region.
        leading = metadata.leading_digits if len(regions) > 1 else None
        rules.append((re.compile(leading) if leading is not None else None, _validity(metadata)))
    national_prefix = metadatas[0].national_prefix_for_parsing
    return (re.compile(national_prefix) if national_prefix else None), rules


def _validity(metadata: PhoneMetadata) -> Matcher:
    """phonenumbers' `_number_type_helper(n, metadata) != UNKNOWN`: the general pattern and any type."""
    kinds = [metadata.fixed_line, metadata.premium_rate, metadata.toll_free, metadata.shared_cost]
    kinds += [metadata.voip, metadata.personal_number, metadata.pager, metadata.uan, metadata.voicemail]
    if not metadata.same_mobile_and_fixed_line_pattern:
        kinds.append(metadata.mobile)
    general = _desc_matcher(metadata.general_desc)
    types = [m for m in (_desc_matcher(desc) for desc in kinds) if m is not None]
    if general is None:
        return lambda national: False
    return lambda national: general(national) and any(matches(national) for matches in types)


def _desc_matcher(desc: object) -> Matcher | None:
    """phonenumbers' `_is_number_matching_desc`: a possible length and a full match of the pattern."""
    pattern = getattr(desc, "national_number_pattern", None)
    if desc is None or not pattern:
        return None
    lengths = frozenset(getattr(desc, "possible_length", ()) or ())
    compiled = re.compile(pattern)
    if lengths:
        return lambda national: len(national) in lengths and compiled.fullmatch(national) is not None
    return lambda national: compiled.fullmatch(national) is not None
