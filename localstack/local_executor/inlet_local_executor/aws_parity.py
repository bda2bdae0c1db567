"""Where LocalStack 4.13.1 differs from AWS in a way Inlet's tests would otherwise have to
special-case, a hook that makes it behave as AWS does, applied when LocalStack starts.

S3 -> EventBridge: AWS puts the object key in `detail.object.key` as it is; LocalStack puts the
percent-encoded form it uses for S3 event notifications. Inlet reads EventBridge keys as AWS
sends them, so the event is given the plain key here.
"""

import dataclasses
from urllib.parse import unquote

from localstack.runtime import hooks


@hooks.on_infra_start()
def eventbridge_keys_as_aws_sends_them():
    from localstack.services.s3 import notifications

    notifier = notifications.EventBridgeNotifier
    original = notifier._get_event_payload
    if getattr(original, "inlet_plain_keys", False):
        return

    def payload(ctx, config_id=None):
        return original(dataclasses.replace(ctx, key_name=unquote(ctx.key_name)), config_id)

    payload.inlet_plain_keys = True
    notifier._get_event_payload = staticmethod(payload)
