"""The checks Alertmanager makes of `global:` and the receivers' integrations when it loads a
configuration: a secret given both inline and in a file, an integration with no credentials
here nor in `global:`, and each integration's own rules, with Alertmanager's messages
(config/config.go and config/notifiers.go). The integrations themselves are not built yet;
these checks make a configuration that Alertmanager refuses refused here too."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from watchkeeper.alerting.routing import RoutingError
from watchkeeper.model import parse_duration

# secrets `global:` may give inline or in a file, but not both
_GLOBAL_EXCLUSIVE = (
    ("smtp_auth_password", "smtp_auth_password_file"),
    ("slack_api_url", "slack_api_url_file"),
    ("slack_app_token", "slack_app_token_file"),
    ("opsgenie_api_key", "opsgenie_api_key_file"),
    ("victorops_api_key", "victorops_api_key_file"),
    ("wechat_api_secret", "wechat_api_secret_file"),
    ("telegram_bot_token", "telegram_bot_token_file"),
    ("rocketchat_token", "rocketchat_token_file"),
    ("rocketchat_token_id", "rocketchat_token_id_file"),
    ("mattermost_webhook_url", "mattermost_webhook_url_file"),
)
# integration -> (keys that carry its credential, global keys that may instead, message)
_NEEDS = {
    "slack_configs": (
        ("api_url", "api_url_file", "app_token", "app_token_file"),
        ("slack_api_url", "slack_api_url_file", "slack_app_token", "slack_app_token_file"),
        "no Slack API URL nor App token set either inline or in a file",
    ),
    "opsgenie_configs": (
        ("api_key", "api_key_file"),
        ("opsgenie_api_key", "opsgenie_api_key_file"),
        "no global OpsGenie API Key set either inline or in a file",
    ),
    "victorops_configs": (
        ("api_key", "api_key_file"),
        ("victorops_api_key", "victorops_api_key_file"),
        "no global VictorOps API Key set",
    ),
    "wechat_configs": (
        ("api_secret", "api_secret_file"),
        ("wechat_api_secret", "wechat_api_secret_file"),
        "no global Wechat Api Secret set either inline or in a file",
    ),
    "rocketchat_configs": (
        ("token", "token_file"),
        ("rocketchat_token", "rocketchat_token_file"),
        "no global Rocketchat Token set either inline or in a file",
    ),
    "telegram_configs": (
        ("bot_token", "bot_token_file"),
        ("telegram_bot_token", "telegram_bot_token_file"),
        "missing bot_token or bot_token_file on telegram_config",
    ),
    "mattermost_configs": (
        ("webhook_url", "webhook_url_file"),
        ("mattermost_webhook_url", "mattermost_webhook_url_file"),
        "missing webhook_url or webhook_url_file on mattermost_config",
    ),
}
_OPSGENIE_FIELDS = {
    "send_resolved",
    "http_config",
    "api_key",
    "api_key_file",
    "api_url",
    "message",
    "description",
    "source",
    "details",
    "entity",
    "responders",
    "actions",
    "tags",
    "note",
    "priority",
    "update_alerts",
}
SLACK_POST_MESSAGE = "https://slack.com/api/chat.postMessage"
VICTOROPS_RESERVED = (
    "routing_key",
    "message_type",
    "state_message",
    "entity_display_name",
    "monitoring_tool",
    "entity_id",
    "entity_state",
)


def check_global(raw: Mapping[str, Any]) -> None:
    for inline, file in _GLOBAL_EXCLUSIVE:
        if raw.get(inline) and raw.get(file):
            raise RoutingError(f"at most one of {inline} & {file} must be configured")
    token = raw.get("slack_app_token") or raw.get("slack_app_token_file")
    url = raw.get("slack_api_url") or raw.get("slack_api_url_file")
    # a bot token goes with Slack's own API, which may be named; a webhook URL may not join it
    if token and url and raw.get("slack_api_url") != SLACK_POST_MESSAGE:
        raise RoutingError(
            "at most one of slack_app_token/slack_app_token_file & "
            "slack_api_url/slack_api_url_file must be configured"
        )


def check_receivers(global_raw: Mapping[str, Any], receivers: Sequence[Any]) -> None:
    for receiver in receivers:
        if not isinstance(receiver, Mapping):
            continue
        for kind, (own, shared, message) in _NEEDS.items():
            for item in receiver.get(kind) or []:
                if not isinstance(item, Mapping):
                    raise RoutingError(f"{kind} entries must be mappings")
                if not any(item.get(k) for k in own) and not any(global_raw.get(k) for k in shared):
                    raise RoutingError(message)
                for inline, file in zip(own[::2], own[1::2], strict=True):
                    if item.get(inline) and item.get(file):
                        raise RoutingError(f"at most one of {inline} & {file} must be configured")
                if kind == "opsgenie_configs":
                    for key in sorted(set(item) - _OPSGENIE_FIELDS):
                        raise RoutingError(f"field {key} not found in type opsgenie.plain")
                    for responder in item.get("responders") or []:
                        check_opsgenie_responder(responder)
                if kind == "slack_configs":
                    for action in item.get("actions") or []:
                        check_slack_action(action)
                if kind == "slack_configs" and item.get("update_message"):
                    token = any(item.get(k) for k in ("app_token", "app_token_file")) or any(
                        global_raw.get(k) for k in ("slack_app_token", "slack_app_token_file")
                    )
                    if not token or item.get("api_url", SLACK_POST_MESSAGE) != SLACK_POST_MESSAGE:
                        raise RoutingError(
                            "update_message can only be used with bot tokens. api_url must be "
                            f"set to {SLACK_POST_MESSAGE}"
                        )
        for item in receiver.get("telegram_configs") or []:
            if not isinstance(item, Mapping):
                continue
            chat = item.get("chat_id")
            if not chat and not item.get("chat_id_file"):
                raise RoutingError("missing chat_id or chat_id_file on telegram_config")
            if chat and item.get("chat_id_file"):
                raise RoutingError("at most one of chat_id & chat_id_file must be configured")
            if chat and (not isinstance(chat, int) or isinstance(chat, bool)):
                raise RoutingError(f"telegram_configs.chat_id: {chat!r} is not a number")
            if item.get("parse_mode", "HTML") not in ("", "Markdown", "MarkdownV2", "HTML"):
                raise RoutingError(
                    "unknown parse_mode on telegram_config, must be Markdown, MarkdownV2, HTML "
                    "or empty string"
                )
        for item in receiver.get("victorops_configs") or []:
            if not isinstance(item, Mapping):
                continue
            if not item.get("routing_key"):
                raise RoutingError("missing Routing key in VictorOps config")
            for name in VICTOROPS_RESERVED:
                if name in (item.get("custom_fields") or {}):
                    raise RoutingError(
                        f"victorOps config contains custom field {name} which cannot be used "
                        "as it conflicts with the fixed/static fields"
                    )
        for item in receiver.get("pushover_configs") or []:
            if not isinstance(item, Mapping):
                continue
            for name in ("user_key", "token"):
                if not item.get(name) and not item.get(f"{name}_file"):
                    raise RoutingError(f"one of {name} or {name}_file must be configured")
                if item.get(name) and item.get(f"{name}_file"):
                    raise RoutingError(f"at most one of {name} & {name}_file must be configured")
            if item.get("html") and item.get("monospace"):
                raise RoutingError("at most one of monospace & html must be configured")
            for name in ("retry", "expire", "ttl"):
                if item.get(name) is not None:
                    try:
                        parse_duration(str(item[name]))
                    except ValueError as err:
                        raise RoutingError(f"pushover_configs.{name}: {err}") from None
        for item in receiver.get("msteamsv2_configs") or []:
            if isinstance(item, Mapping):
                if not (item.get("webhook_url") or item.get("webhook_url_file")):
                    raise RoutingError("one of webhook_url or webhook_url_file must be configured")
                if item.get("webhook_url") and item.get("webhook_url_file"):
                    raise RoutingError(
                        "at most one of webhook_url & webhook_url_file must be configured"
                    )
        for item in receiver.get("discord_configs") or []:
            if isinstance(item, Mapping) and not (
                item.get("webhook_url") or item.get("webhook_url_file")
            ):
                raise RoutingError("one of webhook_url or webhook_url_file must be configured")
        for item in receiver.get("webex_configs") or []:
            if not isinstance(item, Mapping):
                continue
            if not item.get("room_id"):
                raise RoutingError("missing room_id on webex_config")
            if not (item.get("http_config") or {}).get("authorization"):
                raise RoutingError("missing webex_configs.http_config.authorization")
        for item in receiver.get("sns_configs") or []:
            if isinstance(item, Mapping) and not any(
                item.get(k) for k in ("target_arn", "topic_arn", "phone_number")
            ):
                raise RoutingError(
                    "must provide either a Target ARN, Topic ARN, or Phone Number for SNS config"
                )


def check_opsgenie_responder(raw: Any) -> None:
    """An OpsGenie responder as Alertmanager checks one: an id, a name or a username, and a
    type of team, teams, user, escalation or schedule (any case), or a template."""
    if not isinstance(raw, Mapping):
        raise RoutingError("opsgenie_configs.responders entries must be mappings")
    fields = [str(raw.get(k) or "") for k in ("id", "name", "username", "type")]
    shown = "{" + " ".join(fields) + "}"  # Go's %v of the struct
    if not any(fields[:3]):
        raise RoutingError(
            f"opsGenieConfig responder {shown} has to have at least one of id, username or "
            "name specified"
        )
    kind = fields[3]
    if "{{" in kind:
        return
    if kind.lower() not in ("team", "teams", "user", "escalation", "schedule"):
        raise RoutingError(
            f"opsGenieConfig responder {shown} type does not match valid options "
            "^(team|teams|user|escalation|schedule)$"
        )


def check_slack_action(action: Any) -> None:
    """A Slack action (button) as Alertmanager checks one: a type and a text, and a url (a
    link button) or a name (a message action, which may have a value and a confirmation)."""
    if not isinstance(action, Mapping):
        raise RoutingError("slack_configs.actions entries must be mappings")
    if not action.get("type"):
        raise RoutingError("missing type in Slack action configuration")
    if not action.get("text"):
        raise RoutingError("missing text in Slack action configuration")
    if not action.get("url") and not action.get("name"):
        raise RoutingError("missing name or url in Slack action configuration")
    confirm = action.get("confirm")
    if confirm is not None and not (isinstance(confirm, Mapping) and confirm.get("text")):
        raise RoutingError("missing text in Slack confirmation configuration")


def check_inhibit_rules(rules: Sequence[Any]) -> None:
    for rule in rules:
        if not isinstance(rule, Mapping):
            raise RoutingError("inhibit rules must be mappings")
        for key in ("source_match_re", "target_match_re", "source_match", "target_match"):
            for name, value in (rule.get(key) or {}).items():
                if value is None:
                    raise RoutingError(f"{key}: {name}: a value is required")
