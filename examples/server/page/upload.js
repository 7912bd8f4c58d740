// One file's upload and its row in the page: a reference client of the
// session REST API, in plain JavaScript with no build step (see index.html).
//
// For each file: initiate (the server answers the chunk size), send the
// missing chunks three at a time with XMLHttpRequest (whose upload progress
// events drive the bar), each with `Content-Digest: sha-256=:…:`, retry what
// a retry can help with (a dropped connection, 408, 429, 5xx) with bounded
// backoff, then complete. Pause aborts the requests in flight; Resume reads
// the session's status and sends only what the server lacks. The session id
// is kept in localStorage under the file's fingerprint (name, size, last
// modification), so after a reload picking the same file again resumes it.

import { fingerprint, saved } from './saved.js';
import {
  API,
  GaveUp,
  NetworkError,
  ProblemError,
  Superseded,
  jsonOf,
  problemCode,
  problemOf,
  retryable,
  send,
  sleep,
} from './wire.js';

/** Chunks in flight at once, per file. */
const PARALLEL = 3;
/** Failed tries in a row of one request before the upload stops. */
const MAX_ATTEMPTS = 8;
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 15000;
/** Rounds of "complete, told some chunks are missing, send them". */
const MAX_COMPLETE_ROUNDS = 3;

const KiB = 1024;
const MiB = KiB * 1024;
const GiB = MiB * 1024;

export function formatBytes(n) {
  if (n >= GiB) return `${(n / GiB).toFixed(1)} GiB`;
  if (n >= MiB) return `${(n / MiB).toFixed(1)} MiB`;
  if (n >= KiB) return `${(n / KiB).toFixed(1)} KiB`;
  return `${n} B`;
}

function base64(buffer) {
  const bytes = new Uint8Array(buffer);
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

const ACTIVE = new Set(['checking', 'initiating', 'uploading', 'retrying', 'completing']);

/** One file's upload and its row in the page. */
export class Upload {
  /** `onRemove` is called when the user removes a refused file's row. */
  constructor(file, { onRemove } = {}) {
    this.file = file;
    this.onRemove = onRemove;
    this.fp = fingerprint(file);
    this.sessionId = null;
    this.chunkSize = 0;
    this.totalChunks = 0;
    this.acked = new Set();
    this.inflight = new Map();
    this.queue = [];
    this.waiting = 0;
    this.retries = 0;
    this.run = null;
    this.frame = 0;
    this.state = 'new';
    this.row = this.makeRow();
  }

  makeRow() {
    const row = document.getElementById('upload-row').content.firstElementChild.cloneNode(true);
    row.dataset.fileName = this.file.name;
    row.querySelector('[data-testid=name]').textContent = this.file.name;
    row.querySelector('[data-testid=size]').textContent = formatBytes(this.file.size);
    const bar = row.querySelector('progress');
    bar.max = Math.max(this.file.size, 1);
    bar.setAttribute('aria-label', `Upload of ${this.file.name}`);
    row.querySelector('[data-action=pause]').addEventListener('click', () => this.pause());
    row.querySelector('[data-action=resume]').addEventListener('click', () => this.start());
    row.querySelector('[data-action=cancel]').addEventListener('click', () => this.cancel());
    return row;
  }

  part(selector) {
    return this.row.querySelector(`[data-testid=${selector}]`);
  }

  chunkLength(index) {
    return Math.min(this.chunkSize, this.file.size - index * this.chunkSize);
  }

  ackedBytes() {
    let bytes = 0;
    for (const index of this.acked) bytes += this.chunkLength(index);
    return bytes;
  }

  // ---- display

  setState(state, status) {
    this.state = state;
    if (status !== undefined) this.part('status').textContent = status;
    this.render();
  }

  note(text) {
    const note = this.part('note');
    note.textContent = text;
    note.hidden = !text;
  }

  showError(text) {
    const error = this.part('error');
    error.textContent = text;
    error.hidden = !text;
  }

  /** Renders at the next frame, once however many progress events come before it. */
  renderSoon() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  render() {
    const row = this.row;
    const size = this.file.size;
    const done = this.state === 'done';
    let bytes = done ? size : this.ackedBytes();
    if (!done) for (const loaded of this.inflight.values()) bytes += loaded;
    bytes = Math.min(bytes, size);
    const percent = size === 0 ? (done ? 100 : 0) : Math.floor((bytes * 100) / size);
    const bar = this.part('progress');
    bar.value = size === 0 ? (done ? 1 : 0) : bytes;
    const text = `${percent} % · ${formatBytes(bytes)} of ${formatBytes(size)}`;
    bar.setAttribute('aria-valuetext', text);
    const total = this.totalChunks;
    const chunks = total ? ` · ${this.acked.size} of ${total} chunk${total === 1 ? '' : 's'} stored` : '';
    this.part('numbers').textContent = text + chunks;

    row.dataset.state = this.state;
    row.dataset.ackedChunks = String(this.acked.size);
    row.dataset.totalChunks = String(this.totalChunks);
    row.dataset.retries = String(this.retries);
    if (this.sessionId) row.dataset.sessionId = this.sessionId;

    const active = ACTIVE.has(this.state);
    const stopped = this.state === 'paused' || this.state === 'error';
    const pause = row.querySelector('[data-action=pause]');
    const resume = row.querySelector('[data-action=resume]');
    const cancel = row.querySelector('[data-action=cancel]');
    pause.hidden = !active;
    resume.hidden = !stopped;
    cancel.hidden = !(active || stopped || this.state === 'failed');
    cancel.textContent = this.state === 'failed' ? 'Remove' : 'Cancel';
  }

  // ---- the upload

  /** Starts, or resumes after a pause, an error or a reload. */
  async start() {
    if (ACTIVE.has(this.state) || ['done', 'cancelled', 'cancelling'].includes(this.state)) return;
    const run = new AbortController();
    this.run = run;
    const signal = run.signal;
    this.showError('');
    delete this.row.dataset.problemType;
    try {
      if (!this.sessionId) {
        const entry = saved.get(this.fp);
        if (entry && entry.sessionId) await this.adopt(entry.sessionId, signal, 'reload');
      } else {
        await this.adopt(this.sessionId, signal, 'resume');
      }
      if (this.state === 'done') return;
      if (!this.sessionId) await this.initiate(signal);
      for (let round = 1; ; round++) {
        await this.sendMissing(signal);
        const finished = await this.complete(signal, round >= MAX_COMPLETE_ROUNDS);
        if (finished) return;
      }
    } catch (e) {
      if (e instanceof Superseded || signal.aborted) return;
      this.fail(e);
    }
  }

  /**
   * Reads the status of a session this page started before (after a reload,
   * or on Resume) and takes over what the server has; forgets the session
   * when it is gone, so the upload starts over.
   */
  async adopt(sessionId, signal, why) {
    this.setState('checking', 'Asking the server what it already has…');
    const res = await this.readStatus(sessionId, signal);
    const status = res.status === 200 ? jsonOf(res) : null;
    const matches = status && status.fileSize === this.file.size && status.chunkSize > 0;
    if (matches && (status.state === 'open' || status.state === 'finalizing')) {
      this.sessionId = sessionId;
      this.chunkSize = status.chunkSize;
      this.totalChunks = status.totalChunks;
      this.acked = new Set(status.receivedChunks);
      const had = this.acked.size;
      const rest = this.totalChunks - had;
      this.row.dataset.resumedFrom = String(had);
      this.note(
        `Resumed: the server already had ${had} of ${this.totalChunks} chunks ` +
          `(${formatBytes(this.ackedBytes())}); sending the other ${rest}.`,
      );
      saved.put(this.fp, this.entry(status.expiresAt));
      return;
    }
    if (matches && (status.state === 'completed' || status.state === 'claimed')) {
      this.sessionId = sessionId;
      this.chunkSize = status.chunkSize;
      this.totalChunks = status.totalChunks;
      this.acked = new Set(status.receivedChunks);
      saved.remove(this.fp);
      this.setState('done', `Done: ${formatBytes(this.file.size)} stored as ${sessionId} (finished earlier).`);
      return;
    }
    // Gone: aborted, expired, forgotten, or another file under that name.
    const state = status ? status.state : problemOf(res).state;
    let reason = state ? `it was ${state}` : 'the server does not know it';
    if (status && !matches) reason = 'it holds a different file';
    saved.remove(this.fp);
    this.sessionId = null;
    this.acked = new Set();
    this.totalChunks = 0;
    this.row.dataset.restarted = 'true';
    delete this.row.dataset.resumedFrom;
    this.note(
      why === 'reload'
        ? `The earlier upload of this file is no longer on the server (${reason}); starting over.`
        : `The session is no longer on the server (${reason}); starting over.`,
    );
  }

  /** The session's status read: 200, or 404/410 for a session that is gone. */
  readStatus(sessionId, signal) {
    return this.withRetries(
      () => send({ method: 'GET', url: `${API}/session/${encodeURIComponent(sessionId)}`, signal }),
      signal,
      (r) => r.status === 200 || r.status === 404 || r.status === 410,
    );
  }

  entry(expiresAt) {
    return {
      sessionId: this.sessionId,
      fileName: this.file.name,
      fileSize: this.file.size,
      lastModified: this.file.lastModified,
      chunkSize: this.chunkSize,
      totalChunks: this.totalChunks,
      receivedChunks: this.acked.size,
      expiresAt,
    };
  }

  async initiate(signal) {
    this.setState('initiating', 'Starting the upload…');
    const body = JSON.stringify({
      fileName: this.file.name,
      fileSize: this.file.size,
      contentType: this.file.type || 'application/octet-stream',
    });
    const res = await this.withRetries(
      () =>
        send({
          method: 'POST',
          url: `${API}/initiate`,
          body,
          headers: { 'Content-Type': 'application/json' },
          signal,
        }),
      signal,
      (r) => r.status === 201,
    );
    const session = jsonOf(res);
    if (!session || !session.sessionId) throw new Error('the server answered initiate without a session');
    this.sessionId = session.sessionId;
    this.chunkSize = session.chunkSize;
    this.totalChunks = session.totalChunks;
    this.acked = new Set();
    saved.put(this.fp, this.entry(session.expiresAt));
  }

  async sendMissing(signal) {
    this.queue = [];
    for (let i = 0; i < this.totalChunks; i++) if (!this.acked.has(i)) this.queue.push(i);
    this.setState('uploading', 'Uploading…');
    const workers = [];
    for (let w = 0; w < Math.min(PARALLEL, this.queue.length); w++) workers.push(this.worker(signal));
    await Promise.all(workers);
  }

  async worker(signal) {
    for (;;) {
      if (signal.aborted) throw new Superseded();
      const index = this.queue.shift();
      if (index === undefined) return;
      await this.sendChunk(index, signal);
    }
  }

  async sendChunk(index, signal) {
    const start = index * this.chunkSize;
    const bytes = await this.file.slice(start, start + this.chunkLength(index)).arrayBuffer();
    if (signal.aborted) throw new Superseded();
    const headers = { 'Content-Type': 'application/octet-stream' };
    // SubtleCrypto exists only in secure contexts (https, localhost,
    // 127.0.0.1); elsewhere the chunk goes without a digest.
    if (crypto.subtle) {
      headers['Content-Digest'] = `sha-256=:${base64(await crypto.subtle.digest('SHA-256', bytes))}:`;
    }
    const url = `${API}/session/${encodeURIComponent(this.sessionId)}/upload/${index}`;
    try {
      const res = await this.withRetries(
        () =>
          send({
            method: 'PUT',
            url,
            body: bytes,
            headers,
            signal,
            onProgress: (loaded) => {
              this.inflight.set(index, loaded);
              this.renderSoon();
            },
          }),
        signal,
        (r) => r.status === 200 || r.status === 201,
        () => this.inflight.delete(index),
      );
      const receipt = jsonOf(res);
      this.acked.add(index);
      saved.put(this.fp, { receivedChunks: this.acked.size, expiresAt: receipt && receipt.expiresAt });
    } finally {
      this.inflight.delete(index);
      this.render();
    }
  }

  /**
   * Completes the upload. Returns false when the server names missing
   * chunks (they are sent again by the caller), true when done.
   */
  async complete(signal, lastRound) {
    this.setState('completing', 'Assembling the file on the server…');
    const res = await this.withRetries(
      () =>
        send({
          method: 'POST',
          url: `${API}/session/${encodeURIComponent(this.sessionId)}/complete`,
          signal,
        }),
      signal,
      (r) => r.status === 200 || r.status === 201 || (r.status === 409 && !lastRound),
    );
    if (res.status === 409) {
      const problem = problemOf(res);
      if (problemCode(problem) === 'invalid-session-state' && problem.state === 'completed') {
        // An earlier complete went through but its answer was lost.
        await this.adopt(this.sessionId, signal, 'resume');
        if (this.state === 'done') return true;
      }
      if (problemCode(problem) !== 'missing-chunks') throw new ProblemError(problem);
      // The problem lists at most the first 1,000: the status has them all.
      const status = await this.readStatus(this.sessionId, signal);
      if (status.status !== 200) throw new ProblemError(problemOf(status));
      this.acked = new Set(jsonOf(status).receivedChunks);
      this.note(`The server was missing ${problem.missingCount} chunk(s); sending them again.`);
      return false;
    }
    const attachment = jsonOf(res) || {};
    saved.remove(this.fp);
    this.inflight.clear();
    if (attachment.sha256) {
      this.row.dataset.sha256 = attachment.sha256;
      const result = this.part('result');
      result.textContent = `SHA-256 ${attachment.sha256}`;
      result.hidden = false;
    }
    this.setState(
      'done',
      `Done: ${formatBytes(attachment.fileSize ?? this.file.size)} stored as ` +
        `${attachment.sessionId || this.sessionId}.`,
    );
    return true;
  }

  /**
   * Runs `attempt` until `ok(answer)`: a failure a retry can cure is tried
   * again after a growing pause (at most MAX_ATTEMPTS tries in a row), any
   * other answer throws its problem.
   */
  async withRetries(attempt, signal, ok, onFailure) {
    for (let tries = 1; ; tries++) {
      let res = null;
      let failure;
      try {
        res = await attempt();
      } catch (e) {
        if (!(e instanceof NetworkError)) throw e;
        failure = e.message;
      }
      if (res && ok(res)) {
        if (tries > 1) this.recovered();
        return res;
      }
      if (onFailure) onFailure();
      if (res && !retryable(res)) throw new ProblemError(problemOf(res));
      if (res) {
        const problem = problemOf(res);
        failure = `${problem.title}${problem.detail ? `: ${problem.detail}` : ''}`;
      }
      if (tries >= MAX_ATTEMPTS) {
        throw new GaveUp(`Stopped after ${tries} failed tries (${failure}). Press Resume to try again.`);
      }
      let delay = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** (tries - 1));
      delay = delay / 2 + Math.random() * (delay / 2);
      const retryAfter = res ? Number(res.header('Retry-After')) : NaN;
      if (Number.isFinite(retryAfter) && retryAfter > 0) delay = Math.max(delay, retryAfter * 1000);
      await this.waitToRetry(delay, tries, failure, signal);
    }
  }

  async waitToRetry(delay, tries, failure, signal) {
    this.retries += 1;
    this.waiting += 1;
    const previous = this.state;
    const why = navigator.onLine
      ? `Connection problem (${failure}); retrying in ${Math.ceil(delay / 1000)} s (try ${tries + 1} of ${MAX_ATTEMPTS}).`
      : `Offline: waiting for the network to come back, then retrying (try ${tries + 1} of ${MAX_ATTEMPTS}).`;
    this.setState('retrying', why);
    try {
      // While offline, wait longer: the online event ends the wait early.
      await sleep(navigator.onLine ? delay : Math.max(delay, 60000), signal);
    } finally {
      this.waiting -= 1;
    }
    if (this.waiting === 0 && this.state === 'retrying') {
      this.setState(previous === 'retrying' ? 'uploading' : previous, 'Retrying…');
    }
  }

  recovered() {
    if (this.waiting === 0 && (this.state === 'uploading' || this.state === 'retrying')) {
      this.setState('uploading', 'Uploading… (the connection is back)');
    }
  }

  fail(error) {
    this.run?.abort();
    this.inflight.clear();
    if (error instanceof ProblemError) {
      const p = error.problem;
      this.row.dataset.problemType = p.type || '';
      this.showError(`${p.title}${p.detail ? ` — ${p.detail}` : ''}`);
    } else if (error instanceof GaveUp) {
      this.showError(error.message);
    } else if (error && error.name === 'NotReadableError') {
      this.showError('The file can no longer be read (moved or changed?). Pick it again to resume.');
    } else {
      this.showError(String(error && error.message ? error.message : error));
    }
    if (!this.sessionId && error instanceof ProblemError) {
      this.setState('failed', 'Refused by the server.');
    } else {
      this.setState('error', 'Stopped.');
    }
  }

  pause() {
    if (!ACTIVE.has(this.state)) return;
    this.run?.abort();
    this.inflight.clear();
    const percent = this.file.size ? Math.floor((this.ackedBytes() * 100) / this.file.size) : 0;
    this.setState(
      'paused',
      `Paused at ${percent} %: ${this.acked.size} of ${this.totalChunks} chunks are stored on the server.`,
    );
  }

  async cancel() {
    if (this.state === 'failed') {
      this.row.remove();
      if (this.onRemove) this.onRemove(this);
      return;
    }
    this.run?.abort();
    this.inflight.clear();
    if (!this.sessionId) {
      saved.remove(this.fp);
      this.setState('cancelled', 'Cancelled.');
      return;
    }
    const run = new AbortController();
    this.run = run;
    this.setState('cancelling', 'Cancelling…');
    try {
      await this.withRetries(
        () =>
          send({
            method: 'POST',
            url: `${API}/session/${encodeURIComponent(this.sessionId)}/abort`,
            signal: run.signal,
          }),
        run.signal,
        (r) => r.status === 204 || r.status === 404 || r.status === 410,
      );
      saved.remove(this.fp);
      this.acked = new Set();
      this.note('');
      this.setState('cancelled', 'Cancelled: the server deleted what it had received.');
    } catch (e) {
      if (e instanceof Superseded) return;
      this.fail(e);
    }
  }
}
