"""Uploads a file with tuspy in 5 MiB chunks, stops half-way, resumes with a
new uploader on the same URL (which asks the server for the offset), and
prints the upload's URL as JSON. Every PATCH carries a SHA-1
`Upload-Checksum`.

    python tuspy_upload.py <endpoint> <file>
"""

import json
import os
import sys

from tusclient import client

CHUNK = 5 * 1024 * 1024


def main() -> None:
    endpoint, path = sys.argv[1], sys.argv[2]
    size = os.path.getsize(path)
    tus = client.TusClient(endpoint)
    metadata = {"filename": os.path.basename(path)}
    first = tus.uploader(path, chunk_size=CHUNK, metadata=metadata, upload_checksum=True)
    half = (size // 2 // CHUNK) * CHUNK
    first.upload(stop_at=half)
    if first.offset != half:
        raise SystemExit(f"the first uploader stopped at {first.offset}, not {half}")
    second = tus.uploader(path, chunk_size=CHUNK, url=first.url, upload_checksum=True)
    if second.offset != half:
        raise SystemExit(f"the server reported offset {second.offset}, not {half}")
    second.upload()
    print(json.dumps({"url": second.url, "resumedFrom": half}))


if __name__ == "__main__":
    main()
