"""The Alertmanager API v2, as amtool and Grafana's Alertmanager data source call it: alerts
(list and post), alert groups, silences (list, get, set, expire), receivers and status.

Bodies and errors are Alertmanager's: plain JSON lists and objects, times in RFC 3339 with
milliseconds, and a 400 whose body is the JSON string of the problem.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from watchkeeper.alerting import AlertingService, RoutingError, parse_matcher
from watchkeeper.alerting.escalation import Ack
from watchkeeper.alerting.inhibit import Inhibitor
from watchkeeper.alerting.silences import Silence, SilenceError, SilenceNotFoundError
from watchkeeper.api.context import ApiContext
from watchkeeper.api.requests import principal, read_body
from watchkeeper.model import Labels, Matcher, MatchOp, is_valid_label_name
from watchkeeper.model.alerts import Alert, fingerprint_text

_STARTED = dt.datetime.now(dt.UTC)


class _BadRequestError(Exception):
    pass


def _time(ms: int) -> str:
    """strfmt.DateTime as Alertmanager writes it: RFC 3339 with milliseconds, UTC."""
    if ms == 0:
        return "0001-01-01T00:00:00.000Z"
    when = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _parse_time(raw: Any, what: str) -> int:
    """RFC 3339, or Unix seconds (as the Prometheus API takes them); 0 when not given."""
    if raw in (None, ""):
        return 0
    try:
        return round(float(raw) * 1000)
    except (TypeError, ValueError):
        pass
    try:
        when = dt.datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        raise _BadRequestError(f"{what}: invalid time {raw!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    if when.year <= 1:
        return 0  # Go's zero time: not given
    return round(when.timestamp() * 1000)


def _bad(message: str) -> JSONResponse:
    return JSONResponse(message, status_code=400)


def _filters(request: Request) -> list[Matcher]:
    matchers = []
    for text in request.query_params.getlist("filter"):
        body = text.strip()
        if body.startswith("{") and body.endswith("}"):
            body = body[1:-1]
        for part in _split_matchers(body):
            try:
                matchers.append(parse_matcher(part))
            except RoutingError as err:
                raise _BadRequestError(f"bad matcher format: {text}: {err}") from None
    return matchers


def _split_matchers(text: str) -> list[str]:
    parts, depth_quote, current = [], False, []
    escaped = False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
            continue
        if ch == "\\":
            escaped = True
            current.append(ch)
            continue
        if ch == '"':
            depth_quote = not depth_quote
        if ch == "," and not depth_quote:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    if "".join(current).strip():
        parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def _flag(request: Request, name: str, default: bool = True) -> bool:
    raw = request.query_params.get(name)
    return default if raw is None else raw.lower() in ("true", "1")


def _matches(matchers: list[Matcher], labels: Labels) -> bool:
    by_name = dict(labels)
    return all(m.matches(by_name.get(m.name, "")) for m in matchers)


def router(ctx: ApiContext) -> APIRouter:
    api = APIRouter()
    service: AlertingService = ctx.alerting

    def gettable(tenant: str, alert: Alert, now: int, inhibitor: Inhibitor) -> dict[str, Any]:
        dispatcher = service.tenant(tenant).dispatcher
        silenced, inhibited = dispatcher.muted_by(alert.labels, now, inhibitor)
        state = "suppressed" if silenced or inhibited else "active"
        return {
            "annotations": dict(alert.annotations),
            "endsAt": _time(alert.ends_at_ms),
            "fingerprint": fingerprint_text(alert.labels),
            "receivers": [{"name": r} for r in dispatcher.receivers_of(alert.labels)],
            "startsAt": _time(alert.starts_at_ms),
            "status": {"inhibitedBy": inhibited, "silencedBy": silenced, "state": state},
            "updatedAt": _time(alert.updated_at_ms),
            "generatorURL": alert.generator_url,
            "labels": dict(alert.labels),
        }

    def selected(request: Request, tenant: str, alerts: list[Alert]) -> list[dict[str, Any]]:
        now = service.clock()
        matchers = _filters(request)
        receiver = request.query_params.get("receiver")
        try:
            receiver_re = re.compile(f"^(?:{receiver})$") if receiver else None
        except re.error as err:
            raise _BadRequestError(f"receiver: invalid regular expression: {err}") from None
        show_active, show_silenced = _flag(request, "active"), _flag(request, "silenced")
        show_inhibited = _flag(request, "inhibited")
        inhibitor = service.tenant(tenant).dispatcher.inhibitor(now)
        out = []
        for alert in alerts:
            if alert.resolved_at(now) or not _matches(matchers, alert.labels):
                continue
            item = gettable(tenant, alert, now, inhibitor)
            if receiver_re and not any(receiver_re.match(r["name"]) for r in item["receivers"]):
                continue
            status = item["status"]
            if status["silencedBy"] and not show_silenced:
                continue
            if status["inhibitedBy"] and not show_inhibited:
                continue
            if status["state"] == "active" and not show_active:
                continue
            out.append(item)
        return out

    @api.get("/api/v2/alerts")
    async def get_alerts(request: Request) -> Response:
        who = principal(ctx, request, "viewer")
        try:
            found = selected(request, who.tenant, service.tenant(who.tenant).alerts.all())
        except _BadRequestError as err:
            return _bad(str(err))
        found.sort(key=lambda a: a["fingerprint"])
        return JSONResponse(found)

    @api.post("/api/v2/alerts")
    async def post_alerts(request: Request) -> Response:
        who = principal(ctx, request, "editor")
        body = await read_body(request, ctx.config.limits.max_request_body_bytes)
        try:
            raw = json.loads(body or b"null")
        except ValueError as err:
            return _bad(f"invalid JSON body: {err}")
        if not isinstance(raw, list):
            return _bad("the body must be a JSON list of alerts")
        valid, problems = [], []
        for number, item in enumerate(raw):
            try:
                valid.append(_postable_alert(item))
            except _BadRequestError as err:
                problems.append(f"alert {number}: {err}")
        service.receive(who.tenant, valid)
        await service.sync()  # on disk before it is acknowledged
        if problems:
            return _bad("; ".join(problems))
        return Response(status_code=200)

    @api.get("/api/v2/alerts/groups")
    async def get_groups(request: Request) -> Response:
        who = principal(ctx, request, "viewer")
        dispatcher = service.tenant(who.tenant).dispatcher
        groups: list[dict[str, Any]] = []
        try:
            for group in list(dispatcher.groups.values()):
                shown = selected(request, who.tenant, list(group.alerts.values()))
                if not shown:
                    continue
                groups.append(
                    {
                        "alerts": shown,
                        "labels": dict(group.labels),
                        "receiver": {"name": group.route.receiver},
                        # watchkeeper's additions (Alertmanager clients ignore them)
                        "id": group.id,
                        "acknowledged": _ack(group.ack),
                        "escalatedTo": list(group.escalated),
                    }
                )
        except _BadRequestError as err:
            return _bad(str(err))
        groups.sort(key=lambda g: (g["receiver"]["name"], sorted(g["labels"].items())))
        return JSONResponse(groups)

    @api.post("/api/v2/alerts/groups/{group_id}/ack")
    async def ack_group(request: Request, group_id: str) -> Response:
        who = principal(ctx, request, "editor")
        body = await read_body(request, ctx.config.limits.max_request_body_bytes)
        try:
            raw = json.loads(body or b"{}")
        except ValueError as err:
            return _bad(f"invalid JSON body: {err}")
        if not isinstance(raw, dict):
            return _bad("the body must be a JSON object with by and comment")
        by = str(raw.get("by") or who.name)
        comment = str(raw.get("comment") or "")
        try:
            group = service.tenant(who.tenant).dispatcher.acknowledge(group_id, by, comment)
        except KeyError:
            return JSONResponse(f"alert group {group_id} not found", status_code=404)
        remote = request.client.host if request.client else ""
        ctx.audit.record(who.name, who.tenant, "alerts.ack", remote, group.key)
        return JSONResponse({"id": group.id, "acknowledged": _ack(group.ack)})

    @api.get("/api/v1/alerts/history")
    async def history(request: Request) -> Response:
        who = principal(ctx, request, "viewer")
        now = service.clock()
        try:
            matchers = _filters(request)
            end = _parse_time(request.query_params.get("end"), "end") or now
            start = _parse_time(request.query_params.get("start"), "start") or end - 86_400_000
            limit = int(request.query_params.get("limit") or 1000)
        except (_BadRequestError, ValueError) as err:
            return _bad(str(err))
        events = await asyncio.to_thread(
            service.history.search, who.tenant, start, end, matchers, limit
        )
        for event in events:
            event["time"] = _time(event.pop("time_ms"))
        return JSONResponse(events)

    @api.get("/api/v2/silences")
    async def get_silences(request: Request) -> Response:
        who = principal(ctx, request, "viewer")
        try:
            matchers = _filters(request)
        except _BadRequestError as err:
            return _bad(str(err))
        now = service.clock()
        silences = service.tenant(who.tenant).silences.all()
        shown = [
            _gettable_silence(s, now) for s in silences if all(_silence_has(s, m) for m in matchers)
        ]
        order = {"active": 0, "pending": 1, "expired": 2}
        shown.sort(key=lambda s: (order[s["status"]["state"]], s["endsAt"]))
        return JSONResponse(shown)

    @api.post("/api/v2/silences")
    async def post_silence(request: Request) -> Response:
        who = principal(ctx, request, "editor")
        body = await read_body(request, ctx.config.limits.max_request_body_bytes)
        try:
            raw = json.loads(body or b"null")
            silence = _postable_silence(raw)
            silence_id = service.tenant(who.tenant).silences.set(silence, service.clock())
        except SilenceNotFoundError as err:
            return JSONResponse(str(err), status_code=404)
        except (ValueError, _BadRequestError) as err:
            return _bad(str(err))
        remote = request.client.host if request.client else ""
        ctx.audit.record(who.name, who.tenant, "silence.set", remote, silence_id)
        return JSONResponse({"silenceID": silence_id})

    @api.get("/api/v2/silence/{silence_id}")
    async def get_silence(request: Request, silence_id: str) -> Response:
        who = principal(ctx, request, "viewer")
        try:
            silence = service.tenant(who.tenant).silences.get(silence_id)
        except SilenceNotFoundError as err:
            return JSONResponse(str(err), status_code=404)
        return JSONResponse(_gettable_silence(silence, service.clock()))

    @api.delete("/api/v2/silence/{silence_id}")
    async def delete_silence(request: Request, silence_id: str) -> Response:
        who = principal(ctx, request, "editor")
        try:
            service.tenant(who.tenant).silences.expire(silence_id, service.clock())
        except SilenceNotFoundError as err:
            return JSONResponse(str(err), status_code=404)
        except SilenceError as err:
            return _bad(str(err))
        remote = request.client.host if request.client else ""
        ctx.audit.record(who.name, who.tenant, "silence.expire", remote, silence_id)
        return Response(status_code=200)

    @api.get("/api/v2/receivers")
    async def receivers(request: Request) -> Response:
        who = principal(ctx, request, "viewer")
        receivers = service.config_of(who.tenant).receivers
        return JSONResponse([{"name": name} for name in receivers])

    @api.get("/api/v2/status")
    async def status(request: Request) -> Response:
        who = principal(ctx, request, "viewer")
        return JSONResponse(
            {
                "cluster": {"name": "", "peers": [], "status": "disabled"},
                "config": {"original": service.config_of(who.tenant).original},
                "uptime": _STARTED.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                "versionInfo": {
                    "branch": "",
                    "buildDate": "",
                    "buildUser": "",
                    "goVersion": "",
                    "revision": "",
                    "version": ctx.version,
                },
            }
        )

    return api


def _ack(ack: Ack | None) -> dict[str, Any] | None:
    if ack is None:
        return None
    return {"by": ack.by, "at": _time(ack.at_ms), "comment": ack.comment}


def _postable_alert(item: Any) -> Alert:
    if not isinstance(item, dict):
        raise _BadRequestError("an alert must be a JSON object")
    labels = item.get("labels")
    if not isinstance(labels, dict) or not labels:
        raise _BadRequestError("at least one label pair required")
    pairs = []
    for name, value in labels.items():
        if not isinstance(value, str):
            raise _BadRequestError(f"label {name!r}: the value must be a string")
        if not is_valid_label_name(str(name)):
            raise _BadRequestError(f"invalid label name {name!r}")
        if value:  # Alertmanager drops empty labels
            pairs.append((str(name), value))
    if not pairs:
        raise _BadRequestError("at least one label pair required")
    annotations = item.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
        isinstance(v, str) for v in annotations.values()
    ):
        raise _BadRequestError("annotations must be an object of strings")
    starts = _parse_time(item.get("startsAt"), "startsAt")
    ends = _parse_time(item.get("endsAt"), "endsAt")
    if starts and ends and ends < starts:
        raise _BadRequestError("start time must be before end time")
    return Alert(
        labels=tuple(sorted(pairs)),
        annotations=tuple(sorted((str(k), v) for k, v in annotations.items() if v)),
        starts_at_ms=starts,
        ends_at_ms=ends,
        generator_url=str(item.get("generatorURL") or ""),
    )


def _postable_silence(raw: Any) -> Silence:
    if not isinstance(raw, dict):
        raise _BadRequestError("a silence must be a JSON object")
    matchers = []
    for item in raw.get("matchers") or []:
        if not isinstance(item, dict) or "name" not in item or "value" not in item:
            raise _BadRequestError("a matcher needs name, value and isRegex")
        regex, equal = bool(item.get("isRegex")), item.get("isEqual", True) is not False
        op = {
            (False, True): MatchOp.EQUAL,
            (False, False): MatchOp.NOT_EQUAL,
            (True, True): MatchOp.REGEX,
            (True, False): MatchOp.NOT_REGEX,
        }[(regex, equal)]
        try:
            matchers.append(Matcher(str(item["name"]), op, str(item["value"])))
        except ValueError as err:
            raise _BadRequestError(f"invalid matcher {item['name']!r}: {err}") from None
    starts = _parse_time(raw.get("startsAt"), "startsAt")
    ends = _parse_time(raw.get("endsAt"), "endsAt")
    if not starts or not ends:
        raise _BadRequestError("startsAt and endsAt are required")
    return Silence(
        id=str(raw.get("id") or ""),
        matchers=tuple(matchers),
        starts_at_ms=starts,
        ends_at_ms=ends,
        created_by=str(raw.get("createdBy") or ""),
        comment=str(raw.get("comment") or ""),
    )


def _gettable_silence(silence: Silence, now: int) -> dict[str, Any]:
    return {
        "id": silence.id,
        "status": {"state": silence.state(now).value},
        "updatedAt": _time(silence.updated_at_ms),
        "comment": silence.comment,
        "createdBy": silence.created_by,
        "endsAt": _time(silence.ends_at_ms),
        "matchers": [
            {
                "isEqual": m.op in (MatchOp.EQUAL, MatchOp.REGEX),
                "isRegex": m.op in (MatchOp.REGEX, MatchOp.NOT_REGEX),
                "name": m.name,
                "value": m.value,
            }
            for m in silence.matchers
        ],
        "startsAt": _time(silence.starts_at_ms),
    }


def _silence_has(silence: Silence, matcher: Matcher) -> bool:
    """A silence list filter, as Alertmanager's: the silence's matchers read as a label set
    (name -> value); a positive filter needs the name present."""
    values = {m.name: m.value for m in silence.matchers}
    if matcher.op in (MatchOp.NOT_EQUAL, MatchOp.NOT_REGEX):
        return matcher.matches(values.get(matcher.name, ""))
    return matcher.name in values and matcher.matches(values[matcher.name])
