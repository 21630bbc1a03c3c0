"""eventrabbit: event-driven services on RabbitMQ, over raw aiormq.

``build_event_dependencies`` returns the pair every service uses: ``events`` (the decorators
and the publisher) and ``handle`` (which consumes queues).
"""

from __future__ import annotations

from .annotations import Unchecked
from .asyncapi import asyncapi, asyncapi_json, asyncapi_yaml
from .build import build_event_dependencies
from .bulk import BulkResult, ItemResult
from .checkpoints import CheckpointStore, ExternalCheckpoints, FileCheckpoints, MemoryCheckpoints
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
    OrderedQueueStopped,
    PublishError,
    PublishTimeout,
    RemoteError,
    ReplayFailed,
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
from .partitions import PartitionedChannel
from .replay import ReplaySummary
from .replay_context import Replaying, replay_offset, replaying
from .replay_declare import capture
from .status import ConsumerStatus
from .streams import StreamChannel

__all__ = [
    "AccessRefused",
    "BrokerUnavailable",
    "BulkResult",
    "Call",
    "ChannelLost",
    "CheckpointStore",
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
    "ExternalCheckpoints",
    "FailureDecision",
    "FileCheckpoints",
    "Handle",
    "HandlerTimeout",
    "Hooks",
    "InvalidData",
    "InvalidMessage",
    "InvalidResult",
    "ItemResult",
    "MemoryCheckpoints",
    "OrderedQueueStopped",
    "Outcome",
    "PartitionedChannel",
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
    "ReplayFailed",
    "ReplaySummary",
    "Replaying",
    "ReplyLost",
    "RequestError",
    "Result",
    "RetryConfig",
    "StreamChannel",
    "TopologyError",
    "Unchecked",
    "UnroutableError",
    "UnroutableRequest",
    "asyncapi",
    "asyncapi_json",
    "asyncapi_yaml",
    "build_event_dependencies",
    "capture",
    "replay_offset",
    "replaying",
]
