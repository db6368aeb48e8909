"""One set of STREAM_* security settings, translated for both Kafka client libraries."""

from __future__ import annotations

import ssl
from typing import Any

import faust

from stream.config import Settings


def confluent_config(settings: Settings) -> dict[str, Any]:
    """librdkafka properties (producer, consumer, admin) for the configured protocol.

    >>> confluent_config(Settings(security_protocol="SASL_SSL", sasl_username="u", sasl_password="p"))["sasl.mechanisms"]
    'PLAIN'
    """
    conf: dict[str, Any] = {"bootstrap.servers": settings.broker, "security.protocol": settings.security_protocol}
    if settings.security_protocol.startswith("SASL"):
        conf |= {"sasl.mechanisms": settings.sasl_mechanism, "sasl.username": settings.sasl_username,
                 "sasl.password": settings.sasl_password}
    if settings.security_protocol.endswith("SSL"):
        for key, value in (("ssl.ca.location", settings.ssl_cafile), ("ssl.certificate.location", settings.ssl_certfile),
                           ("ssl.key.location", settings.ssl_keyfile)):
            if value:
                conf[key] = value
    return conf


def faust_credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    """Credentials for Faust's broker connection (aiokafka), or None for PLAINTEXT."""
    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = None
    if protocol.endswith("SSL"):
        context = ssl.create_default_context(cafile=settings.ssl_cafile or None)
        if settings.ssl_certfile:
            context.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile or None)
    if protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.sasl_username, password=settings.sasl_password, ssl_context=context,
            mechanism=settings.sasl_mechanism,
        )
    return faust.SSLCredentials(context)
