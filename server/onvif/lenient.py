"""Tolerate devices whose answers use a namespace prefix they never declare.

IPyCam 1.3 (and some camera firmware) answers PTZ calls with ``<ptz:GetPresetsResponse>`` and
no ``xmlns:ptz``; lxml's recovering parser keeps such a tag as the literal ``ptz:...`` and zeep
then refuses it. The prefixes ONVIF documents use are unambiguous, so those tags are given their
namespace before zeep reads the body."""

from __future__ import annotations

from typing import Any

from zeep import Plugin

KNOWN_PREFIXES = {
    "ptz": "http://www.onvif.org/ver20/ptz/wsdl",
    "tptz": "http://www.onvif.org/ver20/ptz/wsdl",
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "trt": "http://www.onvif.org/ver10/media/wsdl",
    "tr2": "http://www.onvif.org/ver20/media/wsdl",
    "tt": "http://www.onvif.org/ver10/schema",
    "tev": "http://www.onvif.org/ver10/events/wsdl",
}


class UndeclaredPrefixes(Plugin):
    def ingress(self, envelope: Any, http_headers: Any, operation: Any) -> tuple[Any, Any]:
        for el in envelope.iter():
            tag = el.tag
            if not isinstance(tag, str) or tag.startswith("{") or ":" not in tag:
                continue
            prefix, local = tag.split(":", 1)
            ns = KNOWN_PREFIXES.get(prefix)
            if ns is not None:
                el.tag = f"{{{ns}}}{local}"
        return envelope, http_headers
