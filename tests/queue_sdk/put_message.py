"""Puts one message on a queue with the current Azure Storage Queues SDK (azure-storage-queue),
unmodified, base64-encoded as the Functions queue trigger expects (host.json's
`messageEncoding`), and prints the storage API version the SDK spoke. Exits non-zero when
the storage service refuses it.

    put_message.py --connection-string CONN --queue output-queue --message TEXT
"""

import argparse
import sys

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient, TextBase64EncodePolicy


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connection-string", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--message", required=True)
    args = parser.parse_args()
    queue = QueueClient.from_connection_string(
        args.connection_string, args.queue, message_encode_policy=TextBase64EncodePolicy()
    )
    try:
        queue.create_queue()
    except ResourceExistsError:
        pass
    sent = queue.send_message(args.message)
    print(f"api version {queue.api_version}", flush=True)
    print(f"sent message {sent.id}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
