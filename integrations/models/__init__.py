"""The integrations app's models, one module per stage of the flow (one app label).

- shops: Shop
- inbound: Delivery (every request), Event (one per shop and webhook id)
- work: Job, Attempt, WorkerHeartbeat
- platform: the demo platform's records (orders, products, variants, inventory, customers)
- outbound: OutboundCall, OutboundAttempt, ShopThrottle
- health: HealthCheck, OutboundHold, SubscriptionGap, ApiNotice, OwnershipRule, OwnershipDrift
- privacy: PrivacyRequest
- replay: ReplayRequest, ReplayItem, HandlerSwitch
- retention: RetentionRun (what each retention purge did)
- triage: triage history and saved views
"""

from integrations.models.health import (
    ApiNotice,
    HealthCheck,
    OutboundHold,
    OwnershipDrift,
    OwnershipRule,
    SubscriptionGap,
)
from integrations.models.inbound import Delivery, Event, webhook_id_match
from integrations.models.outbound import OutboundAttempt, OutboundCall, ShopThrottle
from integrations.models.platform import (
    CustomerMessage,
    FulfillmentNotification,
    PlatformCustomer,
    PlatformInventoryLevel,
    PlatformOrder,
    PlatformProduct,
    PlatformVariant,
)
from integrations.models.privacy import PrivacyProof, PrivacyRequest
from integrations.models.replay import HandlerSwitch, ReplayItem, ReplayRequest
from integrations.models.retention import RetentionRun
from integrations.models.shops import DEFAULT_API_VERSION, Shop, api_version_validator, shop_domain_validator
from integrations.models.states import InvalidTransition, StateMachine
from integrations.models.triage import EventHistory, SavedView
from integrations.models.work import Attempt, Job, WorkerHeartbeat

__all__ = [
    "DEFAULT_API_VERSION",
    "ApiNotice",
    "Attempt",
    "CustomerMessage",
    "Delivery",
    "Event",
    "EventHistory",
    "FulfillmentNotification",
    "HandlerSwitch",
    "HealthCheck",
    "InvalidTransition",
    "Job",
    "OutboundAttempt",
    "OutboundCall",
    "OutboundHold",
    "OwnershipDrift",
    "OwnershipRule",
    "PlatformCustomer",
    "PlatformInventoryLevel",
    "PlatformOrder",
    "PlatformProduct",
    "PlatformVariant",
    "PrivacyProof",
    "PrivacyRequest",
    "ReplayItem",
    "ReplayRequest",
    "RetentionRun",
    "SavedView",
    "Shop",
    "ShopThrottle",
    "StateMachine",
    "SubscriptionGap",
    "WorkerHeartbeat",
    "api_version_validator",
    "shop_domain_validator",
    "webhook_id_match",
]
