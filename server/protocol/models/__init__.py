"""The JSON bodies of the recorder's HTTP API, each defined once as a ``msgspec.Struct``: the
handlers decode requests and build responses with these types, the OpenAPI document's
``components.schemas`` are generated from them, and the workstation may import them.

Why msgspec: strict decoding (no ``"30"`` read as 30) with errors that name the field, fast,
JSON Schema generation from the same types (``msgspec.json.schema_components``), and a single
small dependency without transitive ones, so ``server.protocol`` stays importable anywhere.
"""

from server.protocol.models.analytics import (
    AnalyticsPatch,
    AnalyticsSettings,
    AnalyticsStatus,
    Event,
    MotionRanges,
    MotionSearch,
    TrackRow,
    Zone,
    ZoneInput,
)
from server.protocol.models.archive import (
    ArchiveMode,
    ArchivePolicy,
    ArchivePolicyInput,
    ArchiveStatus,
)
from server.protocol.models.auth import (
    AuditEntry,
    Login,
    NatsGrant,
    Session,
    User,
    UserInput,
    UserPatch,
)
from server.protocol.models.cameras import (
    Camera,
    CameraEventsStatus,
    CameraInput,
    CameraPatch,
    Probe,
    ProbeResult,
    Stream,
)
from server.protocol.models.common import UNSET, CameraId, Micros, StreamName, UnsetType
from server.protocol.models.errors import Error, ErrorDetail
from server.protocol.models.exports import Export, ExportCamera, ExportInput
from server.protocol.models.layouts import Layout, LayoutInput
from server.protocol.models.ptz import (
    DiscoveredDevice,
    OnvifDevice,
    OnvifProfile,
    PtzMove,
    PtzPreset,
    PtzPresetInput,
    PtzState,
    PtzVector,
    RelayOutput,
    RelayOutputState,
)
from server.protocol.models.recordings import (
    Bookmark,
    BookmarkInput,
    BookmarkPatch,
    Fragment,
    Location,
    Range,
    Recordings,
    Segment,
)
from server.protocol.models.server import Health, Server
from server.protocol.models.site import ClusterState, Site, SiteRecorder

__all__ = [
    "UNSET",
    "AnalyticsPatch",
    "AnalyticsSettings",
    "AnalyticsStatus",
    "ArchiveMode",
    "ArchivePolicy",
    "ArchivePolicyInput",
    "ArchiveStatus",
    "AuditEntry",
    "Bookmark",
    "BookmarkInput",
    "BookmarkPatch",
    "Camera",
    "CameraEventsStatus",
    "CameraId",
    "CameraInput",
    "CameraPatch",
    "ClusterState",
    "DiscoveredDevice",
    "Error",
    "ErrorDetail",
    "Event",
    "Export",
    "ExportCamera",
    "ExportInput",
    "Fragment",
    "Health",
    "Layout",
    "LayoutInput",
    "Location",
    "Login",
    "Micros",
    "MotionRanges",
    "MotionSearch",
    "NatsGrant",
    "OnvifDevice",
    "OnvifProfile",
    "Probe",
    "ProbeResult",
    "PtzMove",
    "PtzPreset",
    "PtzPresetInput",
    "PtzState",
    "PtzVector",
    "Range",
    "Recordings",
    "RelayOutput",
    "RelayOutputState",
    "Segment",
    "Server",
    "Session",
    "Site",
    "SiteRecorder",
    "Stream",
    "StreamName",
    "TrackRow",
    "UnsetType",
    "User",
    "UserInput",
    "UserPatch",
    "Zone",
    "ZoneInput",
]
