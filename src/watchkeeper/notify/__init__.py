"""Notifiers: turning a flushed alert group into each service's request. Owns the payload
formats (the Alertmanager webhook payload, byte-compatible) and the HTTP client; keyed by the
integration kind of a receiver's `<kind>_configs`. May import alerting and model."""

from watchkeeper.notify.senders import SUPPORTED_KINDS, Notifiers

__all__ = ["SUPPORTED_KINDS", "Notifiers"]
