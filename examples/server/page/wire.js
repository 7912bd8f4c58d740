// Requests of the upload page: one HTTP request with XMLHttpRequest (upload
// progress events, abort), the answers' problem+json bodies, and which
// failures a retry can cure.

/** The base path of the session REST API. */
export const API = '/attachment';

/** How long a request may make no progress before it counts as failed. */
const STALL_MS = 45000;

/** Problem types a retry can cure (with their 4xx/5xx statuses). */
const RETRYABLE_PROBLEMS = new Set([
  'request-body-failed',
  'checksum-mismatch',
  'contention',
  'store-failure',
  'sink-failure',
  'storage-full',
]);

/** The upload was paused or cancelled: its work stops silently. */
export class Superseded extends Error {}

/** The connection failed before an answer came. */
export class NetworkError extends Error {}

/** The server refused a request with a problem it will not change its mind on. */
export class ProblemError extends Error {
  constructor(problem) {
    super(`${problem.title}: ${problem.detail}`);
    this.problem = problem;
  }
}

/** Retries ran out. */
export class GaveUp extends Error {}

/** Waits `ms`, or less when the browser comes back online; throws if `signal` aborts. */
export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    let timer;
    const done = () => {
      clearTimeout(timer);
      window.removeEventListener('online', done);
      signal.removeEventListener('abort', stop);
      resolve();
    };
    const stop = () => {
      clearTimeout(timer);
      window.removeEventListener('online', done);
      reject(new Superseded());
    };
    if (signal.aborted) return stop();
    timer = setTimeout(done, ms);
    window.addEventListener('online', done);
    signal.addEventListener('abort', stop, { once: true });
  });
}

/**
 * One HTTP request with XMLHttpRequest (upload progress events, abort).
 * Resolves with every answer, whatever its status; rejects with
 * NetworkError when no answer came, Superseded when `signal` aborted it.
 */
export function send({ method, url, body = null, headers = {}, signal, onProgress }) {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new Superseded());
    const xhr = new XMLHttpRequest();
    let stalled = false;
    let timer;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        stalled = true;
        xhr.abort();
      }, STALL_MS);
    };
    const onAbort = () => xhr.abort();
    const finish = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    };
    xhr.open(method, url);
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (e) => {
      arm();
      if (onProgress) onProgress(e.loaded);
    };
    xhr.onprogress = arm;
    xhr.onload = () => {
      finish();
      resolve({
        status: xhr.status,
        text: xhr.responseText,
        header: (name) => xhr.getResponseHeader(name),
      });
    };
    xhr.onerror = () => {
      finish();
      reject(new NetworkError(navigator.onLine ? 'the connection failed' : 'the browser is offline'));
    };
    xhr.onabort = () => {
      finish();
      reject(stalled ? new NetworkError(`no progress for ${STALL_MS / 1000} s`) : new Superseded());
    };
    signal.addEventListener('abort', onAbort, { once: true });
    arm();
    xhr.send(body);
  });
}

export function jsonOf(res) {
  try {
    return JSON.parse(res.text);
  } catch {
    return null;
  }
}

/** The problem+json body of an error answer, or one made up from its status. */
export function problemOf(res) {
  const body = jsonOf(res);
  if (body && typeof body === 'object' && (body.title || body.detail)) {
    return { ...body, status: body.status || res.status };
  }
  return {
    type: 'about:blank',
    title: `HTTP ${res.status}`,
    status: res.status,
    detail: res.text ? res.text.slice(0, 200) : 'the server sent no details',
  };
}

export function problemCode(problem) {
  const type = problem && typeof problem.type === 'string' ? problem.type : '';
  return type.startsWith('urn:resumable:problem:') ? type.slice('urn:resumable:problem:'.length) : '';
}

export function retryable(res) {
  if (res.status === 408 || res.status === 429 || res.status >= 500) return true;
  return RETRYABLE_PROBLEMS.has(problemCode(problemOf(res)));
}
