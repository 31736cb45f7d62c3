"""ONVIF devices: profiles and stream addresses, PTZ, discovery (docs/design/cameras.md).

The SOAP is onvif-zeep-async's (the client Home Assistant and Frigate use); this package turns
its answers into our types and its failures into :class:`OnvifError` with a kind the API maps
to a status."""

from server.onvif.device import (
    MediaProfile,
    OnvifDevice,
    OnvifError,
    PtzCapabilities,
    PtzPreset,
    pick_profiles,
)

__all__ = [
    "MediaProfile",
    "OnvifDevice",
    "OnvifError",
    "PtzCapabilities",
    "PtzPreset",
    "pick_profiles",
]
