"""callstats_client: the Python client of the callstats API (docs/client.md).

    from callstats_client import Client

    with Client("http://127.0.0.1:8000", api_key="cs_...") as api:
        stats = api.get_campaign_stats(campaign_id)
        print(stats.calls_completed)

Client is synchronous, AsyncClient the same methods for asyncio. Errors are in
callstats_client.errors (re-exported here), returned objects in callstats_client.models.
"""

from callstats_client._batches import InvalidCsv
from callstats_client._retry import RetryNotice, RetryPolicy
from callstats_client._version import __version__
from callstats_client.aio import AsyncClient
from callstats_client.client import Client
from callstats_client.errors import (
    ApiError,
    CallstatsError,
    Conflict,
    ConnectionFailed,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    Unauthorized,
    ValidationError,
)
from callstats_client.models import (
    AddContactsProgress,
    AddContactsResult,
    Call,
    CallbackVerdict,
    Campaign,
    CampaignStats,
    CampaignSummary,
    CarrierConnection,
    Contact,
    ContactDetail,
    EventResult,
    Export,
    Page,
    RecordEventsResult,
    Sink,
    Timeseries,
)

__all__ = [
    "AddContactsProgress",
    "AddContactsResult",
    "ApiError",
    "AsyncClient",
    "Call",
    "CallbackVerdict",
    "CallstatsError",
    "Campaign",
    "CampaignStats",
    "CampaignSummary",
    "CarrierConnection",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "Contact",
    "ContactDetail",
    "EventResult",
    "Export",
    "Forbidden",
    "InvalidCsv",
    "MethodNotAllowed",
    "NotFound",
    "Page",
    "PayloadTooLarge",
    "RateLimited",
    "RecordEventsResult",
    "RetryNotice",
    "RetryPolicy",
    "ServerError",
    "ServiceUnavailable",
    "Sink",
    "Timeseries",
    "Unauthorized",
    "ValidationError",
    "__version__",
]
