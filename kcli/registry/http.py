"""The registry's REST API over aiohttp, and the server's entry point.

aiohttp is the HTTP server because it is asyncio-native, well kept, and one dependency
(no ASGI server plus framework pair); the registry's handlers are small and its load is
a few lookups per client start, so its router is all that is needed.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from kcli.registry import errors
from kcli.registry.errors import RegistryError
from kcli.registry.names import SCHEMA_TYPES
from kcli.registry.service import Plan, Registry
from kcli.registry.state import RegistryState
from kcli.registry.store import SchemasTopic

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
Handler = Callable[[web.Request], Awaitable[object]]


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "false").strip().lower() == "true"


async def _body(request: web.Request) -> object:
    raw = await request.read()
    try:
        return orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError as error:
        raise RegistryError(400, f"the request body is not JSON: {error}") from None


def _schema_id(request: web.Request) -> int:
    text = request.match_info["id"]
    if not text.isdigit():
        raise errors.schema_not_found()
    return int(text)


class RegistryApp:
    """The routes, over one state and the topic that feeds it."""

    def __init__(self, state: RegistryState, topic: SchemasTopic) -> None:
        self.registry = Registry(state)
        self.topic = topic

    async def _write(self, planner: Callable[[], Plan]) -> object:
        def plan() -> tuple[list[tuple[bytes, bytes | None]], object]:
            made = planner()
            return made.records, made.answer

        return await self.topic.write(plan)

    def routes(self) -> web.Application:
        """The aiohttp application with every route."""
        app = web.Application(middlewares=[_errors], client_max_size=16 * 1024 * 1024)
        r = self.registry
        get, post, put, delete = "GET", "POST", "PUT", "DELETE"
        table: list[tuple[str, str, Handler]] = [
            (get, "/", self._root),
            (get, "/subjects", lambda q: _now(r.subjects(_flag(q, "deleted"),
                                                         q.query.get("subjectPrefix", "")))),
            (get, "/subjects/{subject}/versions",
             lambda q: _now(r.version_numbers(q.match_info["subject"], _flag(q, "deleted")))),
            (post, "/subjects/{subject}/versions", self._register),
            (get, "/subjects/{subject}/versions/{version}", self._version),
            (get, "/subjects/{subject}/versions/{version}/schema", self._version_schema),
            (get, "/subjects/{subject}/versions/{version}/referencedby", self._referenced_by),
            (delete, "/subjects/{subject}/versions/{version}", self._delete_version),
            (post, "/subjects/{subject}", self._lookup),
            (delete, "/subjects/{subject}", self._delete_subject),
            (get, "/schemas/ids/{id}", self._by_id),
            (get, "/schemas/ids/{id}/schema", self._by_id_text),
            (get, "/schemas/ids/{id}/subjects", self._id_subjects),
            (get, "/schemas/ids/{id}/versions",
             lambda q: _now(r.id_versions(_schema_id(q), _flag(q, "deleted")))),
            (get, "/schemas/types", lambda q: _now(list(SCHEMA_TYPES))),
            (get, "/config", lambda q: _now(r.config(None))),
            (put, "/config", self._set_config),
            (delete, "/config", lambda q: self._write(lambda: r.delete_config(None))),
            (get, "/config/{subject}", lambda q: _now(
                r.config(q.match_info["subject"], _flag(q, "defaultToGlobal")))),
            (put, "/config/{subject}", self._set_config),
            (delete, "/config/{subject}",
             lambda q: self._write(lambda: r.delete_config(q.match_info["subject"]))),
            (get, "/mode", lambda q: _now(r.mode(None))),
            (put, "/mode", self._set_mode),
            (get, "/mode/{subject}", lambda q: _now(
                r.mode(q.match_info["subject"], _flag(q, "defaultToGlobal")))),
            (put, "/mode/{subject}", self._set_mode),
            (delete, "/mode/{subject}",
             lambda q: self._write(lambda: r.delete_mode(q.match_info["subject"]))),
            (post, "/compatibility/subjects/{subject}/versions/{version}", self._check),
            (post, "/compatibility/subjects/{subject}/versions", self._check),
            (get, "/contexts", lambda q: _now(["."])),
        ]
        for method, path, handler in table:
            app.router.add_route(method, path, _json(handler))
        return app

    async def _root(self, request: web.Request) -> object:
        return {}

    async def _register(self, request: web.Request) -> object:
        body = await _body(request)
        subject = request.match_info["subject"]
        return await self._write(lambda: self.registry.register(subject, body))

    async def _version(self, request: web.Request) -> object:
        return self.registry.version(request.match_info["subject"],
                                     request.match_info["version"],
                                     _flag(request, "deleted")).to_json()

    async def _version_schema(self, request: web.Request) -> object:
        version = self.registry.version(request.match_info["subject"],
                                        request.match_info["version"])
        return web.Response(text=version.schema.text, content_type="application/json")

    async def _referenced_by(self, request: web.Request) -> object:
        version = self.registry.version(request.match_info["subject"],
                                        request.match_info["version"])
        return [v.schema_id for v in self.registry.state.referrers(version.subject,
                                                                     version.version)]

    async def _delete_version(self, request: web.Request) -> object:
        subject, version = request.match_info["subject"], request.match_info["version"]
        permanent = _flag(request, "permanent")
        return await self._write(
            lambda: self.registry.delete_version(subject, version, permanent))

    async def _lookup(self, request: web.Request) -> object:
        body = await _body(request)
        return self.registry.lookup(request.match_info["subject"], body,
                                    _flag(request, "deleted")).to_json()

    async def _delete_subject(self, request: web.Request) -> object:
        subject, permanent = request.match_info["subject"], _flag(request, "permanent")
        return await self._write(lambda: self.registry.delete_subject(subject, permanent))

    async def _by_id(self, request: web.Request) -> object:
        return self.registry.by_id(_schema_id(request)).to_json()

    async def _by_id_text(self, request: web.Request) -> object:
        schema = self.registry.by_id(_schema_id(request))
        return web.Response(text=schema.text, content_type="application/json")

    async def _id_subjects(self, request: web.Request) -> object:
        found = self.registry.id_versions(_schema_id(request), _flag(request, "deleted"))
        return sorted({str(v["subject"]) for v in found})

    async def _set_config(self, request: web.Request) -> object:
        body = await _body(request)
        subject = request.match_info.get("subject")
        return await self._write(lambda: self.registry.set_config(subject, body))

    async def _set_mode(self, request: web.Request) -> object:
        body = await _body(request)
        subject, force = request.match_info.get("subject"), _flag(request, "force")
        return await self._write(lambda: self.registry.set_mode(subject, body, force))

    async def _check(self, request: web.Request) -> object:
        body = await _body(request)
        return self.registry.check(request.match_info["subject"],
                                   request.match_info.get("version"), body,
                                   _flag(request, "verbose"))


async def _now(value: object) -> object:
    return value


def _json(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def respond(request: web.Request) -> web.StreamResponse:
        result = await handler(request)
        if isinstance(result, web.StreamResponse):
            return result
        return web.Response(body=orjson.dumps(result), content_type=CONTENT_TYPE)

    return respond


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every error as Confluent's JSON body; nothing a client sends stops the server."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except RegistryError as error:
        return _error(error.status, error.body())
    except web.HTTPException as error:
        return _error(error.status, {"error_code": error.status,
                                     "message": f"HTTP {error.status} {error.reason}"})
    except Exception as error:
        log.exception("internal error serving %s %s", request.method, request.path)
        return _error(500, {"error_code": 500, "message": f"Internal Server Error: {error}"})


def _error(status: int, body: dict[str, object]) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type=CONTENT_TYPE)


async def serve(kafka_config: dict[str, Any], host: str, port: int,
                ready: Callable[[str], None]) -> None:
    """Run the registry until SIGTERM/SIGINT: check or create ``_schemas``, catch up
    with it, then listen; ``ready`` gets the URL once requests are answered."""
    state = RegistryState()
    topic = SchemasTopic(kafka_config, state.apply)
    await asyncio.to_thread(topic.ensure_topic)
    await topic.start()
    runner = web.AppRunner(RegistryApp(state, topic).routes(), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        ready(f"http://{host}:{port}")
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        await stopping.wait()
    finally:
        await runner.cleanup()
        topic.close()


def log_to_stderr() -> None:
    """The server's own log lines (warnings and errors) on stderr."""
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
