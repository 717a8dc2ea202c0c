"""Phone numbers: validated and normalized to E.164. Pure."""

from __future__ import annotations

import phonenumbers


class InvalidPhone(ValueError):
    """A phone number that cannot be dialed, with the reason."""


def normalize(raw: object, default_region: str) -> str:
    """The E.164 form of `raw`, or InvalidPhone saying why not."""
    if raw is None:
        raise InvalidPhone("phone is required")
    if not isinstance(raw, str | int) or isinstance(raw, bool):
        raise InvalidPhone("phone must be a string")
    text = str(raw).strip()
    if not text:
        raise InvalidPhone("phone is empty")
    try:
        parsed = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(f"not a phone number ({exc._msg})") from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhone("not a valid phone number")
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))
