"""`/api/v1/rules` and `/api/v1/alerts`, shaped as Prometheus answers them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request

from watchkeeper.api.context import ApiContext
from watchkeeper.api.errors import APIError, success
from watchkeeper.api.requests import api_params, principal
from watchkeeper.model import labels_to_dict
from watchkeeper.model.gofloat import format_e
from watchkeeper.rules import Alert, AlertState, GroupEvaluator, RuleManager, RuleState

NEVER = "0001-01-01T00:00:00Z"


def router(ctx: ApiContext) -> APIRouter:
    api = APIRouter()

    @api.get("/api/v1/rules")
    async def rules(request: Request) -> dict[str, Any]:
        who = principal(ctx, request, "viewer")
        manager = ctx.rules.get(who.tenant)
        params = await api_params(ctx, request)
        kind = (params.get("type") or [""])[0].lower()
        if kind not in ("", "alert", "record"):
            raise APIError("bad_data", f'invalid parameter "type": {kind!r} is not alert or record')
        names = set(params.get("rule_name[]", []))
        group_names = set(params.get("rule_group[]", []))
        files = set(params.get("file[]", []))
        groups = []
        for evaluator in manager.evaluators() if manager else []:
            group = evaluator.group
            if (group_names and group.name not in group_names) or (
                files and group.file not in files
            ):
                continue
            with evaluator.lock:  # a whole evaluation's state, not half of one
                shown = [
                    _rule(state)
                    for state in evaluator.rules
                    if (not names or state.rule.name in names)
                    and (kind != "alert" or state.alerting is not None)
                    and (kind != "record" or state.alerting is None)
                ]
            if (names or kind) and not shown:
                continue
            assert manager is not None
            groups.append(_group(manager, evaluator, shown))
        return success({"groups": groups})

    @api.get("/api/v1/alerts")
    async def alerts(request: Request) -> dict[str, Any]:
        who = principal(ctx, request, "viewer")
        manager = ctx.rules.get(who.tenant)
        active: list[dict[str, Any]] = []
        for evaluator in manager.evaluators() if manager else []:
            with evaluator.lock:
                active.extend(
                    _alert(alert)
                    for state in evaluator.rules
                    if state.alerting is not None
                    for alert in state.alerting.alerts.values()
                    if alert.state is not AlertState.INACTIVE
                )
        return success({"alerts": active})

    return api


def _group(
    manager: RuleManager, evaluator: GroupEvaluator, rules: list[dict[str, Any]]
) -> dict[str, Any]:
    group = evaluator.group
    return {
        "name": group.name,
        "file": group.file,
        "rules": rules,
        "interval": manager.interval_ms(group) / 1000,
        "limit": group.limit,
        "evaluationTime": evaluator.evaluation_seconds,
        "lastEvaluation": _time(evaluator.last_evaluation_ms),
    }


def _rule(state: RuleState) -> dict[str, Any]:
    rule, status = state.rule, state.status
    common = {
        "name": rule.name,
        "query": rule.expr,
        "labels": dict(rule.labels),
        "health": status.health,
        "evaluationTime": status.evaluation_seconds,
        "lastEvaluation": _time(status.last_evaluation_ms),
    }
    if status.last_error:
        common["lastError"] = status.last_error
    if state.alerting is None:
        return {**common, "type": "recording"}
    alerts = [a for a in state.alerting.alerts.values() if a.state is not AlertState.INACTIVE]
    firing = any(a.state is AlertState.FIRING for a in alerts)
    return {
        **common,
        "type": "alerting",
        "state": "firing" if firing else "pending" if alerts else "inactive",
        "duration": rule.for_ms / 1000,
        "keepFiringFor": rule.keep_firing_for_ms / 1000,
        "annotations": dict(rule.annotations),
        "alerts": [_alert(a) for a in alerts],
    }


def _alert(alert: Alert) -> dict[str, Any]:
    shown = {
        "labels": labels_to_dict(alert.labels),
        "annotations": labels_to_dict(alert.annotations),
        "state": alert.state.value,
        "activeAt": _time(alert.active_at_ms),
        "value": format_e(alert.value),
    }
    if alert.keep_firing_since_ms:
        shown["keepFiringSince"] = _time(alert.keep_firing_since_ms)
    return shown


def _time(ms: int) -> str:
    if not ms:
        return NEVER
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    fraction = f"{moment.microsecond:06d}".rstrip("0")
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"
