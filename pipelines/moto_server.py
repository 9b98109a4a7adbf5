"""The local S3/SQS endpoint: moto's server, plus the one S3 notification moto does not send.

Real S3 sends `s3:ObjectRemoved:DeleteMarkerCreated` when an object in a
versioned bucket is deleted without a version id
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-how-to-event-types-and-destinations.html).
moto 5 creates the delete marker silently, so a local delete would never reach
the ingester. This launcher adds that event and then runs moto's own server.
"""

from __future__ import annotations

import sys
from typing import Any


def send_delete_marker_events() -> None:
    from moto.s3 import models, notifications

    original = models.S3Backend._set_delete_marker

    def _set_delete_marker(self: Any, bucket_name: str, key_name: str) -> Any:
        bucket = self.get_bucket(bucket_name)
        removed = bucket.keys.get(key_name)
        marker = original(self, bucket_name, key_name)
        if isinstance(removed, models.FakeKey):
            notifications.send_event(
                self.account_id,
                notifications.S3NotificationEvent.OBJECT_REMOVED_DELETE_MARKER_CREATED_EVENT,
                bucket,
                removed,
            )
        return marker

    models.S3Backend._set_delete_marker = _set_delete_marker  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> None:
    send_delete_marker_events()
    from moto.server import main as moto_main

    moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
