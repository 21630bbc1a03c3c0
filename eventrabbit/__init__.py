"""eventrabbit: event-driven services on RabbitMQ, over raw aiormq.

``build_event_dependencies`` returns the pair every service uses: ``events`` (the decorators
and the publisher) and ``handle`` (which consumes queues).
"""

from __future__ import annotations

from .annotations import Unchecked
from .asyncapi import asyncapi, asyncapi_json, asyncapi_yaml
from .build import build_event_dependencies
from .bulk import BulkResult, ItemResult
from .common import (
    ConsumeChannel,
    ExchangeType,
    QueueConfig,
    QueueResponse,
    ReconnectConfig,
    RetryConfig,
)
from .errors import (
    AccessRefused,
    BrokerUnavailable,
    ChannelLost,
    ConfigurationError,
    ConsumerTimeout,
    DuplicateHandlerError,
    EventRabbitError,
    HandlerTimeout,
    InvalidData,
    InvalidMessage,
    InvalidResult,
    PublishError,
    PublishTimeout,
    RemoteError,
    ReplyLost,
    RequestError,
    RPCError,
    RPCTimeout,
    TopologyError,
    UnroutableError,
    UnroutableRequest,
)
from .events import Events
from .handle import Handle
from .hooks import Hooks
from .observed import (
    Call,
    ConnectionEvent,
    ConnectionRole,
    ConnectionState,
    Delivery,
    FailureDecision,
    Outcome,
    Publish,
    PublishKind,
    Result,
)
from .status import ConsumerStatus

__all__ = [
    "AccessRefused",
    "BrokerUnavailable",
    "BulkResult",
    "Call",
    "ChannelLost",
    "ConfigurationError",
    "ConnectionEvent",
    "ConnectionRole",
    "ConnectionState",
    "ConsumeChannel",
    "ConsumerStatus",
    "ConsumerTimeout",
    "Delivery",
    "DuplicateHandlerError",
    "EventRabbitError",
    "Events",
    "ExchangeType",
    "FailureDecision",
    "Handle",
    "HandlerTimeout",
    "Hooks",
    "InvalidData",
    "InvalidMessage",
    "InvalidResult",
    "ItemResult",
    "Outcome",
    "Publish",
    "PublishError",
    "PublishKind",
    "PublishTimeout",
    "QueueConfig",
    "QueueResponse",
    "RPCError",
    "RPCTimeout",
    "ReconnectConfig",
    "RemoteError",
    "ReplyLost",
    "RequestError",
    "Result",
    "RetryConfig",
    "TopologyError",
    "Unchecked",
    "UnroutableError",
    "UnroutableRequest",
    "asyncapi",
    "asyncapi_json",
    "asyncapi_yaml",
    "build_event_dependencies",
]
