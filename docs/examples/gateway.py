"""A gateway that sends each user to the pod holding the user's state.

An aiohttp app: one AsyncClientDriver for the whole process, made when the
app starts and closed when it stops. Concurrent requests share its
connection, and every new user costs one EVALSHA, sent in one write with
the other requests' commands. Run it with a Redis that `stroute serve`
pods publish to:

    STROUTE_REDIS_URL=redis://127.0.0.1:6379/0 python docs/examples/gateway.py

and ask it where a user goes: curl http://127.0.0.1:8080/route/42
"""

from __future__ import annotations

from aiohttp import web

from stroute.aio import AsyncClientDriver
from stroute.config import Config
from stroute.errors import InvalidInput, NoAvailablePod, PodUnavailable

SERVICE = "game"
DRIVER = web.AppKey("stroute", AsyncClientDriver)


async def route(request: web.Request) -> web.Response:
    uid = request.match_info["uid"]
    driver = request.app[DRIVER]
    try:
        placed = await driver.place(uid, SERVICE)
    except InvalidInput as exc:
        raise web.HTTPBadRequest(text=f"{exc}\n") from None
    except (NoAvailablePod, PodUnavailable) as exc:
        raise web.HTTPServiceUnavailable(text=f"{exc}\n") from None
    # A real gateway forwards the request to the pod here, for example to
    # http://game-{placed.pod}.game:8080, the StatefulSet's stable name.
    return web.json_response({"uid": uid, "pod": placed.pod, "source": placed.source})


def make_app(config: Config | None = None) -> web.Application:
    app = web.Application()
    app.router.add_get("/route/{uid}", route)

    async def driver(app: web.Application):
        app[DRIVER] = AsyncClientDriver(config)
        await app[DRIVER].wait_coherent()  # serve cached answers only once Redis tells of changes
        yield
        await app[DRIVER].close()

    app.cleanup_ctx.append(driver)
    return app


if __name__ == "__main__":
    web.run_app(make_app(), host="127.0.0.1", port=8080)
