"""Volume and snapshot states (Cinder's names) and the transitional ones the sweeper ends."""

from __future__ import annotations

# volumes
CREATING = "creating"
AVAILABLE = "available"
RESERVED = "reserved"
ATTACHING = "attaching"
IN_USE = "in-use"
DETACHING = "detaching"
EXTENDING = "extending"
DELETING = "deleting"
DELETED = "deleted"
ERROR = "error"
ERROR_DELETING = "error_deleting"
ERROR_EXTENDING = "error_extending"
DOWNLOADING = "downloading"
UPLOADING = "uploading"
MAINTENANCE = "maintenance"

VOLUME_STATUSES = (CREATING, AVAILABLE, RESERVED, ATTACHING, IN_USE, DETACHING, EXTENDING,
                   DELETING, ERROR, ERROR_DELETING, ERROR_EXTENDING, DOWNLOADING, UPLOADING,
                   MAINTENANCE)
# What os-reset_status may set (Cinder's admin action takes any status of the list).
RESETTABLE = VOLUME_STATUSES
ATTACH_STATUSES = ("attached", "attaching", "detached", "detaching", "reserved")
DETACHED = "detached"

# A volume may be deleted (by its owner) only from these; admins use os-force_delete.
DELETABLE = (AVAILABLE, ERROR, ERROR_EXTENDING, ERROR_DELETING)
# Volumes in these may be a clone's source or get a snapshot.
USABLE = (AVAILABLE, IN_USE)

# Transitional volume states and the state the sweeper leaves them in when the volume role
# never finished them (it died, the message was lost).
VOLUME_TIMEOUT_STATE = {CREATING: ERROR, DELETING: ERROR_DELETING, EXTENDING: ERROR_EXTENDING}

# snapshots
SNAPSHOT_STATUSES = (CREATING, AVAILABLE, DELETING, ERROR, ERROR_DELETING)
SNAPSHOT_TIMEOUT_STATE = {CREATING: ERROR, DELETING: ERROR_DELETING}
