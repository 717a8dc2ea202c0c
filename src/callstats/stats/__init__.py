"""Campaign statistics, in the fixed roles: routes.py (HTTP), service.py (the use cases, the one body
and ETag), readers.py (the hot read, one class per backend), queries.py (raw rows), response.py
(rendering), schemas.py (shapes), reconcile.py (the check against raw rows)."""
