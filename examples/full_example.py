# The seed README's "Full Example", as written there, with two changes only:
# - ExchangeType is imported from eventrabbit instead of aio_pika (both work);
# - the broker URL comes from $EVENTRABBIT_URL (default: the local guest broker), and URL is
#   used where the seed writes the literal "amqp://user:password@localhost:5672/".
# Once a TRACKERS_INFO event arrives, a1 publishes another TRACKERS_INFO (retro.abc()), so it
# ping-pongs until the process is stopped: that is the seed's behaviour.
# The seed's code is kept as written, so neither isort's ordering nor the formatter applies:
# ruff: noqa: I001
# fmt: off
import asyncio
import os
from eventrabbit import ExchangeType
from eventrabbit import build_event_dependencies
from eventrabbit.common import ConsumeChannel

URL = os.environ.get("EVENTRABBIT_URL", "amqp://guest:guest@localhost:5672/")

# Initialize dependencies

events, handle = build_event_dependencies(
    url=URL,
    idle_timeout=300,
)

# Global call counter
count_call = 0

# Handler for TRACKERS_INFO event
@events.consumer(action="TRACKERS_INFO")
async def a1(b: str):
    global count_call
    print(b, "23")
    retro = Retro()
    await retro.abc()
    count_call += 1
    print("count", count_call)
    return b

# Handler for TRACKERS_INFO_1 event
@events.consumer(action="TRACKERS_INFO_1")
async def a2(b: str):
    global count_call
    print(b, "23")
    retro = Retro()
    count_call += 1
    print("count", count_call)
    await retro.abc1()
    return b

# Map of queues and exchanges
QUEUES_EXCHANGES = {
    "calendar_user_sync": "PROFILE_FANOUT_EXCHANGE",
    "calendar_google_sync": "GOOGLE_FANOUT_EXCHANGE",
    "calendar_user_status_sync": "USER_STATUS_FANOUT_EXCHANGE",
}

# Class with producers
class Retro:
    @events.producer(
        exchange_name="GOOGLE_FANOUT_EXCHANGE",
        action="TRACKERS_INFO",
    )
    async def abc(self):
        return {"b": "12"}

    @events.producer(
        exchange_name="PROFILE_FANOUT_EXCHANGE",
        action="TRACKERS_INFO_1",
    )
    async def abc1(self):
        return {"b": "12"}

# Main function to start queue consumption
async def main() -> None:
    tasks = [
        asyncio.create_task(
            handle.consume(ConsumeChannel(
                url=URL,
                queue_name=queue,
                exchange_name=exchange,
                exchange_type=ExchangeType.FANOUT,
            )),
        )
        for queue, exchange in QUEUES_EXCHANGES.items()
    ]
    tasks += [handle.consume(ConsumeChannel(
            url=URL,
            queue_name="tracker_info",
            exchange_type=ExchangeType.DIRECT,
        ))]

    await asyncio.gather(*tasks)

if __name__ == "__main__":
    asyncio.run(main())
