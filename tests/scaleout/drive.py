"""Drives an upload through two server instances that share one store and
one sink, through the session REST API, and checks the outcome.

    python3 drive.py upload URL_A URL_B FILE      # prints JSON
    python3 drive.py abandon URL_A FILE           # prints JSON

`upload`:
- initiates on instance A;
- sends every chunk out of order, alternating between the instances, 8 at a
  time;
- sends three chunks to both instances at once;
- then re-sends one chunk to B while A completes, so the complete races a
  late chunk;
- checks that the completed upload's SHA-256 equals the file's and that the
  status counts every chunk once.

`abandon` initiates on A and sends a few chunks, then leaves the session for
the sweep.

Standard library only; every request has a timeout and every loop is
bounded.
"""

import hashlib
import json
import random
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

TIMEOUT = 120


def request(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def initiate(base, path, size):
    body = json.dumps({"fileName": path.rsplit("/", 1)[-1], "fileSize": size}).encode()
    status, reply = request("POST", f"{base}/attachment/initiate", body, {"content-type": "application/json"})
    if status != 201:
        raise SystemExit(f"initiate answered {status}: {reply!r}")
    return json.loads(reply)


def chunk_of(data, info, index):
    start = index * info["chunkSize"]
    return data[start:start + info["chunkSize"]]


def put(base, info, index, data):
    url = f"{base}/attachment/session/{info['sessionId']}/upload/{index}"
    return request("PUT", url, chunk_of(data, info, index), {"content-type": "application/octet-stream"})


def upload(url_a, url_b, path):
    data = open(path, "rb").read()
    want = hashlib.sha256(data).hexdigest()
    started = time.monotonic()
    info = initiate(url_a, path, len(data))
    total = info["totalChunks"]
    order = list(range(total))
    random.Random(7).shuffle(order)
    doubled = set(order[:3])
    statuses = []
    lock = threading.Lock()

    def send(job):
        base, index = job
        status, reply = put(base, info, index, data)
        with lock:
            statuses.append((index, status))
        if status not in (200, 201):
            raise SystemExit(f"chunk {index} on {base} answered {status}: {reply!r}")

    jobs = []
    for n, index in enumerate(order):
        jobs.append((url_a if n % 2 == 0 else url_b, index))
        if index in doubled:
            jobs.append((url_b if n % 2 == 0 else url_a, index))
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(send, jobs))
    sent = time.monotonic()

    # The complete on A races a re-sent chunk on B.
    late = order[-1]
    with ThreadPoolExecutor(max_workers=2) as pool:
        late_reply = pool.submit(put, url_b, info, late, data)
        complete = pool.submit(request, "POST", f"{url_a}/attachment/session/{info['sessionId']}/complete")
        late_status, _ = late_reply.result()
        complete_status, complete_body = complete.result()
    for _ in range(20):
        if complete_status == 200:
            break
        time.sleep(0.2)
        complete_status, complete_body = request("POST", f"{url_b}/attachment/session/{info['sessionId']}/complete")
    if complete_status != 200:
        raise SystemExit(f"complete answered {complete_status}: {complete_body!r}")
    done = time.monotonic()
    attachment = json.loads(complete_body)
    return {
        "sessionId": info["sessionId"],
        "chunks": total,
        "chunkSize": info["chunkSize"],
        "sha256": attachment["sha256"],
        "sha256Matches": attachment["sha256"] == want,
        "fileSize": attachment["fileSize"],
        "sameChunkTwice": sorted(doubled),
        "lateChunkStatus": late_status,
        "chunkReplies": {"201": sum(1 for _, s in statuses if s == 201), "200": sum(1 for _, s in statuses if s == 200)},
        "secondsSending": round(sent - started, 3),
        "secondsTotal": round(done - started, 3),
        "mbPerSecond": round(len(data) / (done - started) / 1e6, 1),
    }


def abandon(url_a, path):
    data = open(path, "rb").read()
    info = initiate(url_a, path, len(data))
    for index in range(min(3, info["totalChunks"])):
        status, reply = put(url_a, info, index, data)
        if status not in (200, 201):
            raise SystemExit(f"chunk {index} answered {status}: {reply!r}")
    return {"sessionId": info["sessionId"]}


def main():
    mode = sys.argv[1]
    if mode == "upload":
        print(json.dumps(upload(sys.argv[2], sys.argv[3], sys.argv[4])))
    elif mode == "abandon":
        print(json.dumps(abandon(sys.argv[2], sys.argv[3])))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
