"""State-changing endpoints for operators, behind a bearer token.

Read-only endpoints are open; these are not. The token comes from
``WASIHOST_TOKEN`` or ``[web] token`` and is compared in constant time;
with neither set the endpoints answer 403. Only the ``Authorization``
header is accepted (no cookies, no basic auth), because browsers never add
that header on their own: scripts in the sandboxed dashboard page cannot
borrow an operator's credentials.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
from typing import TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from wasihost.errors import PluginError
from wasihost.runtime.plugin import Plugin
from wasihost.web import edge
from wasihost.web.node import Node

TOKEN_ENV = "WASIHOST_TOKEN"


def operator_token(configured: str | None) -> str | None:
    return os.environ.get(TOKEN_ENV) or configured


def error(status: int, reason: str, **headers: str) -> web.Response:
    return web.json_response({"error": reason}, status=status, headers=headers)


def require_token(node_key: web.AppKey[Node], handler: Handler) -> Handler:
    async def guarded(request: web.Request) -> web.StreamResponse:
        token = operator_token(request.app[node_key].web_config.token)
        if token is None:
            return error(403, f"operator endpoints are disabled: set {TOKEN_ENV} or [web] token")
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        # aiohttp keeps bytes that are not UTF-8 as surrogates; such a token is
        # simply wrong, and must not raise while being compared.
        offered = given.encode("utf-8", "surrogateescape")
        if scheme.lower() != "bearer" or not hmac.compare_digest(offered, token.encode()):
            return error(401, "a valid bearer token is required", **{"WWW-Authenticate": "Bearer"})
        return await handler(request)

    return guarded


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class BeepBody(_Body):
    count: int = Field(1, ge=1, le=5)
    duration_ms: int = Field(200, ge=10, le=2000)
    interval_ms: int = Field(200, ge=0, le=2000)


class FanBody(_Body):
    on: bool


Model = TypeVar("Model", bound=BaseModel)


def _json_http(kind: type[web.HTTPClientError], reason: str) -> web.HTTPClientError:
    """An HTTP error whose body is JSON with the reason, like every other error here."""
    return kind(text=json.dumps({"error": reason}), content_type="application/json")


async def parse_body(request: web.Request, model: type[Model]) -> Model:
    """The JSON body as ``model``; raises an HTTP 400 naming the bad field."""
    try:  # a body trickled in byte by byte must not hold the handler for ever
        async with asyncio.timeout(edge.BODY_TIMEOUT_S):
            raw = await request.read()
    except TimeoutError:
        raise _json_http(
            web.HTTPRequestTimeout,
            f"the request body did not arrive within {edge.BODY_TIMEOUT_S} s",
        ) from None
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise _json_http(web.HTTPBadRequest, f"{where}: {first['msg']}") from None


def routes(node_key: web.AppKey[Node]) -> list[web.RouteDef]:
    def plugin_of(request: web.Request) -> Plugin:
        name = request.match_info["name"]
        plugin = request.app[node_key].plugins.get(name)
        if plugin is None:
            raise _json_http(web.HTTPNotFound, f"no plugin named {name[:64]!r}")
        return plugin

    async def reload_plugin(request: web.Request) -> web.Response:
        plugin = plugin_of(request)
        reloaded = await request.app[node_key].reload_plugin(plugin.name)
        status = plugin.status()
        return web.json_response(
            {
                "reloaded": reloaded,
                "reload_error": status["reload_error"],
                "last_reload": status["last_reload"],
            }
        )

    async def reset_plugin(request: web.Request) -> web.Response:
        """409 with the reason when the plugin cannot be revived (hung, or its
        new instance fails), rather than a 200 that changed nothing."""
        plugin = plugin_of(request)
        try:
            await asyncio.to_thread(plugin.reset)
        except PluginError as exc:
            return error(409, exc.reason)
        return web.json_response(plugin.status())

    async def test_buzzer(request: web.Request) -> web.Response:
        body = await parse_body(request, BeepBody)
        board = request.app[node_key].board
        await asyncio.to_thread(board.beep, body.count, body.duration_ms, body.interval_ms)
        return web.json_response({"beeped": body.count})

    async def test_fan(request: web.Request) -> web.Response:
        body = await parse_body(request, FanBody)
        board = request.app[node_key].board
        await asyncio.to_thread(board.set_fan, body.on)
        return web.json_response({"fan_on": await asyncio.to_thread(board.get_fan)})

    def guarded(handler: Handler) -> Handler:
        return require_token(node_key, handler)

    return [
        web.post("/api/plugins/{name}/reload", guarded(reload_plugin)),
        web.post("/api/plugins/{name}/reset", guarded(reset_plugin)),
        web.post("/api/test/buzzer", guarded(test_buzzer)),
        web.post("/api/test/fan", guarded(test_fan)),
    ]
