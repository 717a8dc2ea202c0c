"""The pure core: the rules every number follows, with no I/O and no import of the rest of callstats.

- `outcomes`: the one list of call outcomes and event types.
- `lifecycle`: every contact and call state change (`lifecycle.apply`).
- `counters`: the counter values a campaign has and every delta that moves them (`counters.moved`).
- `histogram`: the talk-time buckets and the percentiles read from them.
- `phones`: phone numbers validated and normalized to a contact's identity (E.164 plus extension).
- `text`: what text the storage can hold.

Everything else may import these modules; they import only the standard library and
phonenumbers (tests/test_architecture.py checks both).
"""
