"""Carrier webhooks: Twilio, Retell and Vapi callbacks taken straight in, verified and mapped.

- `routes.py`, `service.py`, `queries.py`, `schemas.py`: the carrier connections (create, list,
  delete; the signing secret sealed at rest by callstats.sealing), and `service.connection_for_webhook`,
  the connection a webhook names with its secret opened.
- `public_url.py`: the public base of the webhook URLs (CALLSTATS_PUBLIC_URL, or the request's own
  scheme and host, forwarded headers believed from CALLSTATS_TRUSTED_PROXIES only).
- `facts.py` and one module per platform (`twilio.py`, `retell.py`, `vapi.py`), pure: verify a
  callback's signature and turn it into call events.
"""
