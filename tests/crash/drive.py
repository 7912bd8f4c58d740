"""Drives one upload through the session REST API while the server is killed
and restarted under it, and reports what surviving that cost.

    python3 drive.py abandon CONTROL_DIR FILE     # prints JSON
    python3 drive.py upload CONTROL_DIR FILE      # prints JSON

CONTROL_DIR is shared with the runner:
- `url`: the server's current base URL (the runner replaces it after every
  restart; the client rereads it after every connection error or 5xx);
- `kills`: how many times the server was killed so far;
- `kills-done`: present once the runner stopped killing;
- `session`: written by the client: the id of its session, so a restarted
  client never initiates twice;
- `progress`: written by the client: chunks known to be received, of the
  total.

`upload`:
- initiates once (retrying on connection errors), with the file's SHA-256;
- sends the chunks in a shuffled order, 4 at a time, each body paced over
  PACE seconds so that a kill finds requests in flight, each with a
  `Content-Digest`;
- is held back by the runner's kills: before kill k (of GATE), only the first
  (k+1)/(GATE+1) of the chunks may be sent, so at least GATE kills happen
  while chunks are still missing; everything once `kills-done` exists;
- on any connection error or 5xx: waits briefly, rereads the URL, reads the
  status and resends every chunk the status does not list as received. It
  never decides from its own memory what was acknowledged; it only uses that
  memory to check that no acknowledged chunk is ever missing again;
- once every chunk is received and `kills-done` exists, completes (a 409
  `invalid-session-state` while another complete holds the session means
  retry later).

`abandon` initiates a second session and sends two chunks, then leaves it for
the sweep.

Standard library only; every request has a timeout and every loop is
bounded.
"""

import base64
import hashlib
import http.client
import json
import os
import random
import sys
import threading
import time
import urllib.error
import urllib.request

TIMEOUT = 30
PARALLEL = 4
GATE = int(os.environ.get("CRASH_KILLS", "20"))
PACE = float(os.environ.get("CRASH_PACE", "0.4"))
PIECES = 16
MAX_ATTEMPTS = 500
DEADLINE = time.monotonic() + float(os.environ.get("CRASH_CLIENT_SECONDS", "540"))


class Retry(Exception):
    """The server is gone or failing: resume from the status."""


def read_text(path, default=None):
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        return default


def write_text(path, text):
    temp = f"{path}.{os.getpid()}.new"
    with open(temp, "w") as f:
        f.write(text)
    os.replace(temp, path)


class Client:
    def __init__(self, control, path):
        self.control = control
        self.path = path
        self.data = open(path, "rb").read()
        self.sha256 = hashlib.sha256(self.data).hexdigest()
        self.lock = threading.Lock()
        self.attempts = 0
        self.resumes = 0
        self.status_reads = 0
        self.refused = 0
        self.cut = 0
        self.server_errors = 0
        self.bytes_sent = 0
        self.chunk_sends = 0
        self.acked = set()
        self.acked_lost = set()

    # ---- plumbing ----

    def base(self):
        return read_text(os.path.join(self.control, "url"))

    def kills(self):
        return int(read_text(os.path.join(self.control, "kills"), "0") or 0)

    def kills_done(self):
        return os.path.exists(os.path.join(self.control, "kills-done"))

    def note_failure(self, error):
        """Counts a failed attempt; refuses to go on past the bound."""
        with self.lock:
            self.attempts += 1
            if isinstance(error, ConnectionRefusedError):
                self.refused += 1
            elif error is not None:
                self.cut += 1
            if self.attempts > MAX_ATTEMPTS:
                raise SystemExit(f"gave up after {MAX_ATTEMPTS} failed attempts (last: {error!r})")
        if time.monotonic() > DEADLINE:
            raise SystemExit(f"gave up at the deadline (last: {error!r})")

    def request(self, method, url, body=None, headers=None):
        """(status, body); raises Retry on a connection error or 5xx."""
        req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            reply = e.read()
            if e.code >= 500:
                with self.lock:
                    self.server_errors += 1
                self.note_failure(None)
                raise Retry(f"{method} {url} answered {e.code}: {reply[:200]!r}") from None
            return e.code, reply
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            reason = getattr(e, "reason", e)
            self.note_failure(reason if isinstance(reason, BaseException) else e)
            raise Retry(f"{method} {url}: {e!r}") from None

    def pause(self):
        time.sleep(0.25)

    # ---- session ----

    def initiate(self):
        state = os.path.join(self.control, "session")
        known = read_text(state)
        if known:
            return known
        body = json.dumps({
            "fileName": os.path.basename(self.path),
            "fileSize": len(self.data),
            "contentType": "application/octet-stream",
            "sha256": self.sha256,
        }).encode()
        while True:
            try:
                status, reply = self.request("POST", f"{self.base()}/attachment/initiate", body,
                                             {"content-type": "application/json"})
            except Retry:
                self.pause()
                continue
            if status != 201:
                raise SystemExit(f"initiate answered {status}: {reply!r}")
            info = json.loads(reply)
            write_text(state, info["sessionId"])
            return info["sessionId"]

    def status(self, sid):
        while True:
            try:
                status, reply = self.request("GET", f"{self.base()}/attachment/session/{sid}")
            except Retry:
                self.pause()
                continue
            if status != 200:
                raise SystemExit(f"status answered {status}: {reply!r}")
            with self.lock:
                self.status_reads += 1
            return json.loads(reply)

    # ---- chunks ----

    def body(self, chunk):
        """The chunk's bytes in PIECES pieces over PACE seconds, counted as sent."""
        step = -(-len(chunk) // PIECES)
        for start in range(0, len(chunk), step):
            if start:
                time.sleep(PACE / PIECES)
            piece = chunk[start:start + step]
            with self.lock:
                self.bytes_sent += len(piece)
            yield piece

    def put(self, base, sid, index, chunk_size):
        chunk = self.data[index * chunk_size:(index + 1) * chunk_size]
        digest = base64.b64encode(hashlib.sha256(chunk).digest()).decode()
        with self.lock:
            self.chunk_sends += 1
        status, reply = self.request(
            "PUT", f"{base}/attachment/session/{sid}/upload/{index}", self.body(chunk),
            {"content-type": "application/octet-stream", "content-length": str(len(chunk)),
             "content-digest": f"sha-256=:{digest}:"})
        if status not in (200, 201):
            raise SystemExit(f"chunk {index} answered {status}: {reply!r}")
        receipt = json.loads(reply)
        if receipt["size"] != len(chunk) or receipt["sha256"] != hashlib.sha256(chunk).hexdigest():
            raise SystemExit(f"chunk {index}: the receipt does not describe the bytes sent: {receipt}")
        with self.lock:
            self.acked.add(index)

    def allowed(self, total):
        """How many chunks of the order may be sent now."""
        if self.kills_done():
            return total
        return min(total, total * (self.kills() + 1) // (GATE + 1))

    def send_round(self, sid, base, todo, chunk_size, total):
        """Sends `todo` (positions and indices, in order), PARALLEL at a time,
        each only once the gate allows it. True if a failure stopped it."""
        queue = list(todo)
        queue.reverse()
        stop = threading.Event()
        fatal = []

        def worker():
            try:
                while not stop.is_set():
                    with self.lock:
                        if not queue:
                            return
                        position, index = queue[-1]
                        ready = position < self.allowed(total)
                        if ready:
                            queue.pop()
                    if not ready:
                        if time.monotonic() > DEADLINE:
                            raise SystemExit("gave up at the deadline waiting for kills")
                        time.sleep(0.05)
                        continue
                    try:
                        self.put(base, sid, index, chunk_size)
                    except Retry:
                        stop.set()
                        return
            except BaseException as e:  # noqa: BLE001 - reported by the caller
                fatal.append(e)
                stop.set()

        threads = [threading.Thread(target=worker) for _ in range(PARALLEL)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if fatal:
            raise fatal[0]
        return stop.is_set()

    def check_acked(self, received):
        """An acknowledged chunk must stay received, whatever was killed."""
        with self.lock:
            lost = self.acked - set(received)
            self.acked_lost |= lost
        if lost:
            print(f"acknowledged chunk(s) missing after a restart: {sorted(lost)}", file=sys.stderr)

    def upload(self):
        started = time.monotonic()
        sid = self.initiate()
        info = self.status(sid)
        chunk_size, total = info["chunkSize"], info["totalChunks"]
        order = list(range(total))
        random.Random(int(os.environ.get("CRASH_SEED", "7"))).shuffle(order)
        position = {index: n for n, index in enumerate(order)}
        progress = os.path.join(self.control, "progress")
        rounds = 0
        while True:
            if rounds:
                self.pause()
            rounds += 1
            info = self.status(sid)
            if info["state"] != "open":
                raise SystemExit(f"the session is {info['state']} before it was completed: {info}")
            received = info["receivedChunks"]
            self.check_acked(received)
            write_text(progress, f"{len(received)} {total}")
            missing = sorted((position[i] for i in set(range(total)) - set(received)))
            if not missing:
                break
            interrupted = self.send_round(sid, self.base(), [(p, order[p]) for p in missing],
                                          chunk_size, total)
            if interrupted:
                self.resumes += 1
        sent = time.monotonic()
        while not self.kills_done():
            if time.monotonic() > DEADLINE:
                raise SystemExit("gave up at the deadline waiting for kills-done")
            time.sleep(0.1)
        attachment = self.complete(sid)
        write_text(progress, f"{total} {total} completed")
        done = time.monotonic()
        first_pass = len(self.data)
        return {
            "sessionId": sid,
            "chunks": total,
            "chunkSize": chunk_size,
            "fileSize": attachment["fileSize"],
            "sha256": attachment["sha256"],
            "sha256Matches": attachment["sha256"] == self.sha256,
            "state": attachment["state"],
            "resumes": self.resumes,
            "statusReads": self.status_reads,
            "chunkSends": self.chunk_sends,
            "bytesSent": self.bytes_sent,
            "bytesResent": max(0, self.bytes_sent - first_pass),
            "requestsCut": self.cut,
            "requestsRefused": self.refused,
            "serverErrors": self.server_errors,
            "failedAttempts": self.attempts,
            "ackedLost": sorted(self.acked_lost),
            "secondsSending": round(sent - started, 1),
            "secondsTotal": round(done - started, 1),
        }

    def complete(self, sid):
        for _ in range(MAX_ATTEMPTS):
            try:
                status, reply = self.request("POST", f"{self.base()}/attachment/session/{sid}/complete")
            except Retry:
                self.pause()
                continue
            if status == 200:
                return json.loads(reply)
            problem = json.loads(reply) if reply else {}
            if status == 409 and problem.get("type", "").endswith("invalid-session-state"):
                time.sleep(1)
                continue
            raise SystemExit(f"complete answered {status}: {reply!r}")
        raise SystemExit("complete did not succeed")

    # ---- the abandoned session ----

    def abandon(self):
        body = json.dumps({"fileName": "abandoned.bin", "fileSize": len(self.data)}).encode()
        status, reply = self.request("POST", f"{self.base()}/attachment/initiate", body,
                                     {"content-type": "application/json"})
        if status != 201:
            raise SystemExit(f"initiate answered {status}: {reply!r}")
        info = json.loads(reply)
        for index in range(min(2, info["totalChunks"])):
            chunk = self.data[index * info["chunkSize"]:(index + 1) * info["chunkSize"]]
            status, reply = self.request("PUT", f"{self.base()}/attachment/session/{info['sessionId']}/upload/{index}",
                                         chunk, {"content-type": "application/octet-stream"})
            if status not in (200, 201):
                raise SystemExit(f"chunk {index} answered {status}: {reply!r}")
        return {"sessionId": info["sessionId"]}


def main():
    mode, control, path = sys.argv[1:4]
    client = Client(control, path)
    if mode == "upload":
        print(json.dumps(client.upload()))
    elif mode == "abandon":
        print(json.dumps(client.abandon()))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
