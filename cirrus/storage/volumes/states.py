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
REVERTING = "reverting"  # 3.40's revert to the latest snapshot

VOLUME_STATUSES = (CREATING, AVAILABLE, RESERVED, ATTACHING, IN_USE, DETACHING, EXTENDING,
                   DELETING, ERROR, ERROR_DELETING, ERROR_EXTENDING, DOWNLOADING, UPLOADING,
                   MAINTENANCE, REVERTING)
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
VOLUME_TIMEOUT_STATE = {CREATING: ERROR, DELETING: ERROR_DELETING, EXTENDING: ERROR_EXTENDING,
                        REVERTING: ERROR}
# uploading (os-volume_upload_image) ends where it began: in-use if the volume is attached,
# else available (the data was only read); the sweeper ends it after volume_task_timeout.
UPLOAD_TIMEOUT_STATES = (UPLOADING,)
# Statuses the sweeper sends the message again for (the others are not redriven).
REDRIVEN = (CREATING, DELETING)

# snapshots
RESTORING = "restoring"  # the snapshot a volume is being reverted to
SNAPSHOT_STATUSES = (CREATING, AVAILABLE, DELETING, ERROR, ERROR_DELETING, RESTORING)
SNAPSHOT_TIMEOUT_STATE = {CREATING: ERROR, DELETING: ERROR_DELETING, RESTORING: AVAILABLE}
