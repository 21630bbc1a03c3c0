"""The service as an AsyncAPI 3.0 document, held to the official schema.

The schema is the ``@asyncapi/specs`` package's ``schemas/3.0.0.json`` (which bundles every
definition it refers to, JSON Schema draft-07 included), fetched from the npm registry once
per session and checked against its published digest; nothing else is fetched. A run that
cannot reach the registry fails: a document nobody validated must not pass.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import runpy
import tarfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from eventrabbit import ExchangeType, RetryConfig
from eventrabbit.asyncapi import Consumed, Published, asyncapi, asyncapi_json, document
from eventrabbit.common import ConsumeChannel
from eventrabbit.shapes import AnyShape, ListOf, ObjectOf, Scalar, StringForm

SPECS = "https://registry.npmjs.org/@asyncapi/specs/-/specs-6.11.1.tgz"
#: The tarball's sha512, as the registry publishes it (``dist.integrity``).
SPECS_SHA512 = (
    "A3WBLqAKGoJ2+6FWFtpjBlCQ1oFCcs4GxF7zsIGvNqp/klGUHjlA3aAcZ9XMMpLGE8zPeYDz2x9FmO6DSuKraQ=="
)
SCHEMA_IN_TARBALL = "package/schemas/3.0.0.json"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
URL = "amqp://guest:guest@localhost:5672/"


@pytest.fixture(scope="session")
def official_schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """AsyncAPI 3.0.0's JSON Schema, from the npm registry (cached for the session)."""
    try:
        with urllib.request.urlopen(SPECS, timeout=60) as response:
            tarball = response.read()
    except (urllib.error.URLError, TimeoutError) as exc:
        pytest.fail(f"cannot fetch the AsyncAPI schema from {SPECS}: {exc}", pytrace=False)
    digest = base64.b64encode(hashlib.sha512(tarball).digest()).decode()
    assert digest == SPECS_SHA512, f"{SPECS} is not the tarball the registry published"
    with tarfile.open(fileobj=io.BytesIO(tarball)) as archive:
        member = archive.extractfile(SCHEMA_IN_TARBALL)
        assert member is not None, f"{SCHEMA_IN_TARBALL} is not in {SPECS}"
        text = member.read()
    (tmp_path_factory.mktemp("asyncapi") / "3.0.0.json").write_bytes(text)
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate(doc: dict[str, Any], schema: dict[str, Any]) -> None:
    """Validate ``doc`` (after a JSON round trip, as a tool would read it) against ``schema``,
    its bundled definitions being the only documents ``$ref`` may reach."""
    resources = [
        (uri, Resource.from_contents(one, default_specification=DRAFT7))
        for uri, one in schema["definitions"].items()
    ]
    validator = Draft7Validator(schema, registry=Registry().with_resources(resources))
    errors = sorted(validator.iter_errors(json.loads(json.dumps(doc))), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])


def names_in(doc: dict[str, Any]) -> tuple[set[str], set[str], set[str]]:
    """The actions, queues and exchanges a document names, read back from it."""
    actions = {m["name"] for m in doc["components"]["messages"].values()}
    queues, exchanges = set(), set()
    for channel in doc["channels"].values():
        amqp = channel["bindings"]["amqp"]
        if amqp["is"] == "queue":
            queues.add(amqp["queue"]["name"])
        else:
            exchanges.add(amqp["exchange"]["name"])
    return actions, queues, exchanges


def test_the_document_of_examples_service_is_valid_and_complete(
    official_schema: dict[str, Any],
) -> None:
    service = runpy.run_path(str(EXAMPLES / "service.py"))  # defines, does not run
    doc = asyncapi(
        service["events"],
        *service["QUEUES"],
        title="service",
        version="1.0.0",
        handle=service["handle"],
    )
    validate(doc, official_schema)
    actions, queues, exchanges = names_in(doc)
    assert {"USER_CREATED", "SEND_EMAIL", "EMAIL_SENT", "GET_USER"} <= actions
    for channel in service["QUEUES"]:
        name = channel.queue_name
        assert {name, f"{name}.delay", f"{name}.dlq"} <= queues
    assert {service["USERS_EXCHANGE"], service["EMAIL_EXCHANGE"]} <= exchanges
    operations = {(op["action"], op["channel"]["$ref"]) for op in doc["operations"].values()}
    assert ("send", "#/channels/exchange.example_service.email") in operations


def test_the_document_of_the_seeds_full_example_is_valid_and_complete(
    official_schema: dict[str, Any],
) -> None:
    seed = runpy.run_path(str(EXAMPLES / "full_example.py"))
    channels = [
        ConsumeChannel(
            url=URL, queue_name=queue, exchange_name=exchange, exchange_type=ExchangeType.FANOUT
        )
        for queue, exchange in seed["QUEUES_EXCHANGES"].items()
    ]
    channels.append(
        ConsumeChannel(url=URL, queue_name="tracker_info", exchange_type=ExchangeType.DIRECT)
    )
    doc = json.loads(asyncapi_json(seed["events"], *channels, title="seed", version="0.1.1"))
    validate(doc, official_schema)
    actions, queues, exchanges = names_in(doc)
    assert {"TRACKERS_INFO", "TRACKERS_INFO_1"} <= actions
    expected = set(seed["QUEUES_EXCHANGES"]) | {"tracker_info"}
    assert queues == expected | {f"{q}{s}" for q in expected for s in (".delay", ".dlq")}
    assert set(seed["QUEUES_EXCHANGES"].values()) | {""} == exchanges
    assert "guest" not in json.dumps(doc["servers"])  # no credentials


@dataclasses.dataclass
class User:
    id: int
    name: str


USER = ObjectOf("User", (("id", Scalar("int")), ("name", Scalar("str"))), frozenset({"id"}), User)
PARAMS = ObjectOf("handler", (("user", USER), ("at", StringForm("date-time"))), frozenset({"user"}))


def test_shapes_become_payloads_and_shared_classes_components(
    official_schema: dict[str, Any],
) -> None:
    doc = document(
        [Consumed("USER_SAVED", PARAMS, ListOf(USER), "svc.save")],
        [Published("USER_SAVED", "users", "user.saved", USER), Published("AUDIT", "", "audit")],
        [
            ConsumeChannel(
                url="amqps://u:secret@rabbit:5671/prod",
                queue_name="q",
                exchange_name="users",
                exchange_type="topic",
                binding_keys=("user.*", "audit"),
            )
        ],
        title="t",
        version="1",
        retry_config=RetryConfig(max_retries=0),
    )
    validate(doc, official_schema)
    messages = doc["components"]["messages"]
    data = messages["USER_SAVED"]["payload"]["properties"]["data"]
    assert data["properties"]["user"] == {"$ref": "#/components/schemas/User"}
    assert doc["components"]["schemas"]["User"]["required"] == ["id"]
    # published with other data than the handler takes: a message of its own
    assert messages["USER_SAVED.published"]["payload"]["properties"]["data"] == {
        "$ref": "#/components/schemas/User"
    }
    reply = messages["USER_SAVED.reply"]["payload"]["oneOf"][0]["properties"]["data"]
    assert reply == {"type": "array", "items": {"$ref": "#/components/schemas/User"}}
    assert "queue.q.delay" not in doc["channels"]  # max_retries=0 declares no delay queue
    server = {"host": "rabbit:5671", "protocol": "amqps", "pathname": "prod"}
    assert doc["servers"] == {"broker": {**server, "protocolVersion": "0-9-1"}}
    assert doc["channels"]["queue.q"]["x-eventrabbit-bindings"] == [
        {"exchange": "users", "routingKey": "user.*"},
        {"exchange": "users", "routingKey": "audit"},
    ]
    receive = doc["operations"]["receive.q.USER_SAVED"]
    assert receive["reply"]["address"]["location"] == "$message.header#/reply_to"
    audit = doc["channels"]["exchange.(default).audit".replace("(", "_").replace(")", "_")]
    assert audit["bindings"]["amqp"]["exchange"] == {"name": "", "vhost": "prod", "type": "default"}
    assert messages["AUDIT"]["payload"]["properties"]["data"] == {}


def test_odd_names_get_unique_ids(official_schema: dict[str, Any]) -> None:
    doc = document(
        [Consumed("a/b", AnyShape()), Consumed("a b", AnyShape())], [], [], title="t", version="1"
    )
    validate(doc, official_schema)
    assert {"a_b", "a_b_2"} <= set(doc["components"]["messages"])


def test_decorating_does_not_connect() -> None:
    # build_event_dependencies on a URL nothing listens on: decorating and documenting work.
    from eventrabbit import build_event_dependencies

    events, _ = build_event_dependencies("amqp://nobody:none@127.0.0.1:1/")

    @events.producer(exchange_name="x", action="A")
    async def produce() -> dict[str, int]:
        return {}

    assert asyncapi(events, title="t", version="1")["operations"]["send.A"]["action"] == "send"


def test_the_official_schema_refuses_a_broken_document(official_schema: dict[str, Any]) -> None:
    # Guards the tests above against a validator that accepts anything.
    doc = document([Consumed("A", AnyShape())], [], [], title="t", version="1")
    doc["operations"] = {"x": {"action": "publish", "channel": {"$ref": "#/channels/reply"}}}
    with pytest.raises(AssertionError, match="operations"):
        validate(doc, official_schema)


def test_a_plugins_exchange_type_is_left_out_of_the_amqp_binding() -> None:
    # The AsyncAPI AMQP binding allows AMQP's own types only; x-consistent-hash would make
    # the document invalid.
    from eventrabbit.asyncapi_parts import exchange_channel

    hashed = exchange_channel("orders", "k", ExchangeType.CONSISTENT_HASH, "/")
    assert "type" not in hashed["bindings"]["amqp"]["exchange"]
    fanout = exchange_channel("orders", "k", ExchangeType.FANOUT, "/")
    assert fanout["bindings"]["amqp"]["exchange"]["type"] == "fanout"
