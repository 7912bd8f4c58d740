// The example server's upload page in headless Chromium, driven by
// playwright-core: a 50 MiB upload paused, resumed, carried across a reload
// and a lost connection, then checked byte for byte; several files at once;
// a file the server refuses; files dropped on the page; a session the
// server no longer has; Cancel.
//
// Run by tests/browser/run.sh, which starts the server and sets:
//   BASE_URL      the server, http://127.0.0.1:PORT
//   DATA_DIR      its data directory (stored files are under blobs/uploads/ID/blob)
//   ARTIFACT_DIR  where the screenshot of the finished page goes
//   CHROMIUM      the browser (default /usr/bin/chromium)
//   UPDATE_SCREENSHOT=1  also copy the screenshot to docs/browser-page.png
//
// The upload is slowed in the browser itself (DevTools network emulation),
// so that it can be paused half-way on a fast loopback; the server is not
// changed. Every wait is bounded; nothing asserts on speed.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const BASE_URL = required('BASE_URL');
const DATA_DIR = required('DATA_DIR');
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const ARTIFACT_DIR = process.env.ARTIFACT_DIR || path.join(REPO, 'target', 'browser-artifacts');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const MiB = 1024 * 1024;
/** The browser's upload rate while throttled: a 50 MiB file takes about 17 s. */
const UPLOAD_RATE = 3 * MiB;

let browser;
let work;

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (run tests/browser/run.sh)`);
  return value;
}

function log(...args) {
  console.log('   ', ...args);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it returns a truthy value; fails after `timeout` ms. */
async function waitFor(what, check, timeout = 60000, interval = 50) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await check();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(interval);
  }
}

async function sha256File(file) {
  const hash = createHash('sha256');
  for await (const part of createReadStream(file)) hash.update(part);
  return hash.digest('hex');
}

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

/** Saves a screenshot of `page` as ARTIFACT_DIR/NAME.png; returns its path. */
async function snapshot(page, name) {
  await fs.mkdir(ARTIFACT_DIR, { recursive: true });
  const file = path.join(ARTIFACT_DIR, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** The file the server stored for a completed session. */
const storedFile = (sessionId) => path.join(DATA_DIR, 'blobs', 'uploads', sessionId, 'blob');

/** The session's status read through the REST API (`null` for 404/410). */
async function serverStatus(sessionId) {
  const res = await fetch(`${BASE_URL}/attachment/session/${sessionId}`, {
    signal: AbortSignal.timeout(10000),
  });
  if (res.status === 404 || res.status === 410) return { gone: true, status: res.status, ...(await res.json()) };
  assert.equal(res.status, 200, `status read of ${sessionId}`);
  return res.json();
}

async function writeRandom(name, size) {
  const file = path.join(work, name);
  const bytes = randomBytes(size);
  await fs.writeFile(file, bytes);
  return { file, sha: sha256(bytes), size };
}

/** A new page on the upload page, with DevTools network emulation at hand. */
async function openPage() {
  const context = await browser.newContext({ viewport: { width: 960, height: 720 } });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`uncaught: ${e.message}`));
  page.on('console', (msg) => {
    if (/Content Security Policy|Uncaught/i.test(msg.text())) problems.push(`console: ${msg.text()}`);
  });
  await page.goto(`${BASE_URL}/`);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 10000 });
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  const network = async ({ offline = false, rate = UPLOAD_RATE } = {}) =>
    cdp.send('Network.emulateNetworkConditions', {
      offline,
      latency: 0,
      downloadThroughput: -1,
      uploadThroughput: rate,
    });
  await network();
  return { context, page, network, problems };
}

function rowOf(page, name) {
  return page.locator(`[data-testid="upload"][data-file-name="${name}"]`);
}

async function progress(row) {
  const [acked, total, state] = await Promise.all([
    row.getAttribute('data-acked-chunks'),
    row.getAttribute('data-total-chunks'),
    row.getAttribute('data-state'),
  ]);
  return { acked: Number(acked), total: Number(total), state };
}

async function waitForState(row, state, timeout = 120000) {
  return waitFor(
    `state ${state}`,
    async () => {
      const now = await row.getAttribute('data-state');
      if (now === 'error' || now === 'failed') {
        if (state !== now) {
          throw new Error(`the upload stopped: ${await row.getByTestId('error').textContent()}`);
        }
      }
      return now === state;
    },
    timeout,
  );
}

/** The chunk indices the page sends, as the browser issues the requests. */
function watchChunkRequests(page) {
  const sent = [];
  page.on('request', (request) => {
    const m = request.method() === 'PUT' && /\/upload\/(\d+)$/.exec(request.url());
    if (m) sent.push(Number(m[1]));
  });
  return sent;
}

async function savedSessions(page) {
  return page.evaluate(() => JSON.parse(localStorage.getItem('resumable.uploads.v1') || '{}'));
}

before(async () => {
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'resumable-browser-'));
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    timeout: 30000,
  });
  log(`Chromium ${browser.version()}, server ${BASE_URL}`);
});

after(async () => {
  await browser?.close();
  if (work) await fs.rm(work, { recursive: true, force: true });
});

test('the page and its files are served with their types, never cached stale', async () => {
  for (const [route, type] of [
    ['/', 'text/html; charset=utf-8'],
    ['/page/main.js', 'text/javascript; charset=utf-8'],
    ['/page/upload.js', 'text/javascript; charset=utf-8'],
    ['/page/wire.js', 'text/javascript; charset=utf-8'],
    ['/page/saved.js', 'text/javascript; charset=utf-8'],
    ['/page/style.css', 'text/css; charset=utf-8'],
  ]) {
    const res = await fetch(`${BASE_URL}${route}`, { signal: AbortSignal.timeout(10000) });
    assert.equal(res.status, 200, route);
    assert.equal(res.headers.get('content-type'), type, route);
    assert.equal(res.headers.get('cache-control'), 'no-cache', route);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff', route);
    assert.ok((await res.text()).length > 100, route);
    // Other methods answer as before the page existed.
    const post = await fetch(`${BASE_URL}${route}`, { method: 'POST', signal: AbortSignal.timeout(10000) });
    assert.equal(post.status, 404, `POST ${route}`);
  }
});

// One page for the next two tests: its final state is the screenshot.
let main;

test('a 50 MiB file: pause, resume, reload, offline, then the stored file equals the source', { timeout: 240000 }, async () => {
  const source = await writeRandom('big.bin', 50 * MiB);
  main = await openPage();
  const { page, network } = main;
  const sent = watchChunkRequests(page);
  const row = rowOf(page, 'big.bin');

  // Pick the file; pause at about half.
  await page.setInputFiles('[data-testid="file-input"]', source.file);
  await waitFor('about half acknowledged', async () => {
    const p = await progress(row);
    return p.total > 0 && p.acked / p.total >= 0.42;
  });
  await row.getByTestId('pause').click();
  await waitForState(row, 'paused', 10000);
  const paused = await progress(row);
  const id = await row.getAttribute('data-session-id');
  log(`paused at ${paused.acked} of ${paused.total} chunks (session ${id})`);
  assert.equal(paused.total, 50, 'a 50 MiB file in 1 MiB chunks');
  assert.ok(paused.acked / paused.total >= 0.4 && paused.acked / paused.total <= 0.7, `paused at ${paused.acked}`);
  assert.match(await row.getByTestId('status').textContent(), /Paused at \d+ %/);
  await snapshot(page, 'paused');
  assert.ok(await row.getByTestId('resume').isVisible(), 'Resume is offered');
  assert.ok(!(await row.getByTestId('pause').isVisible()), 'Pause is not');

  // Nothing more arrives while paused.
  await sleep(300);
  const first = await serverStatus(id);
  const sentBefore = sent.length;
  await sleep(1200);
  const second = await serverStatus(id);
  assert.deepEqual(second.receivedChunks, first.receivedChunks, 'the server received nothing while paused');
  assert.equal(sent.length, sentBefore, 'the page sent nothing while paused');
  assert.ok(first.receivedChunks.length >= paused.acked, 'the server has every chunk the page showed as stored');
  assert.equal((await progress(row)).acked, paused.acked, 'the page shows no progress while paused');
  const frac = first.receivedChunks.length / first.totalChunks;
  assert.ok(frac >= 0.4 && frac <= 0.7, `the server holds ${first.receivedChunks.length} chunks`);

  // Resume: the page reads the status and sends only what is missing.
  const sentBeforeUnpause = sent.length;
  await row.getByTestId('resume').click();
  await waitFor('more acknowledged', async () => {
    const p = await progress(row);
    if (p.state === 'error') throw new Error(await row.getByTestId('error').textContent());
    return p.acked / p.total >= 0.6 && p.acked >= second.receivedChunks.length + 3;
  });
  const stored = new Set(second.receivedChunks);
  assert.deepEqual(
    sent.slice(sentBeforeUnpause).filter((i) => stored.has(i)),
    [],
    'Resume sent no chunk the server had',
  );

  // Reload mid-upload: the page lists the unfinished upload.
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]', { timeout: 10000 });
  const pending = page.locator('[data-testid="pending-entry"][data-file-name="big.bin"]');
  await pending.waitFor({ timeout: 10000 });
  await waitFor('the pending entry checked with the server', async () =>
    /chunks on the server.*Pick the same file again/.test(await pending.textContent()),
  10000);
  log(`after reload: ${(await pending.textContent()).trim()}`);
  await snapshot(page, 'reloaded');
  await sleep(500); // requests cut by the reload settle on the server
  const beforePick = await serverStatus(id);
  const had = new Set(beforePick.receivedChunks);
  assert.ok(had.size > second.receivedChunks.length && had.size < beforePick.totalChunks, `the server holds ${had.size}`);
  assert.ok(
    Object.values(await savedSessions(page)).some((e) => e.sessionId === id),
    'the session is kept in localStorage',
  );

  // Pick the same file again: it resumes from what the server has.
  const sentBeforeResume = sent.length;
  await page.setInputFiles('[data-testid="file-input"]', source.file);
  const resumed = rowOf(page, 'big.bin');
  await waitFor('the resumed row', async () => (await resumed.getAttribute('data-resumed-from')) !== null, 10000);
  const resumedFrom = Number(await resumed.getAttribute('data-resumed-from'));
  const note = await resumed.getByTestId('note').textContent();
  log(`resumed: ${note}`);
  assert.equal(await resumed.getAttribute('data-session-id'), id, 'the same session');
  assert.ok(resumedFrom >= had.size, `resumed from ${resumedFrom}, the server had ${had.size}`);
  assert.match(note, new RegExp(`Resumed: the server already had ${resumedFrom} of 50 chunks`));
  assert.equal(await page.locator('[data-testid="pending-entry"]').count(), 0, 'no longer listed as unfinished');

  // Drop the connection for a moment: the row says so, then recovers.
  await waitFor('a few chunks more', async () => (await progress(resumed)).acked >= resumedFrom + 2, 60000);
  const beforeOffline = await progress(resumed);
  assert.ok(beforeOffline.acked <= beforeOffline.total - 3, `chunks left to send (${beforeOffline.acked} stored)`);
  await network({ offline: true });
  await waitForState(resumed, 'retrying', 20000);
  const offlineStatus = await resumed.getByTestId('status').textContent();
  const onLine = await page.evaluate(() => navigator.onLine);
  const banner = await page.getByTestId('network').isVisible();
  log(`offline: navigator.onLine=${onLine}, banner shown=${banner}, row: "${offlineStatus}"`);
  assert.equal(onLine, false, 'the emulated outage is seen by the page');
  assert.match(offlineStatus, /^Offline: waiting for the network to come back, then retrying \(try \d of 8\)\.$/);
  assert.ok(banner, 'the offline banner is shown');
  assert.match(await page.getByTestId('network').textContent(), /You are offline/);
  await snapshot(page, 'offline');
  await sleep(2000);
  assert.equal(await resumed.getAttribute('data-state'), 'retrying', 'still waiting while offline');
  await network({ offline: false });
  await waitForState(resumed, 'done', 120000);
  assert.ok(!(await page.getByTestId('network').isVisible()), 'the offline banner is gone');
  assert.ok(Number(await resumed.getAttribute('data-retries')) > 0, 'it retried');

  // Only what the server lacked was sent after the reload.
  const afterResume = sent.slice(sentBeforeResume);
  const resent = afterResume.filter((i) => had.has(i));
  assert.deepEqual(resent, [], 'no chunk the server had was sent again');
  const distinct = new Set(afterResume);
  log(`after the reload: ${distinct.size} distinct chunks sent (${afterResume.length} requests with retries); the server had ${had.size} of 50`);
  assert.ok(distinct.size <= 50 - had.size);

  // The page shows the server's answer; the stored file is the source.
  const status = await resumed.getByTestId('status').textContent();
  log(`done: ${status}`);
  assert.equal(status, `Done: 50.0 MiB stored as ${id}.`);
  assert.equal(await resumed.getAttribute('data-sha256'), source.sha, "the server's SHA-256");
  assert.equal(await resumed.getByTestId('result').textContent(), `SHA-256 ${source.sha}`);
  assert.equal(await sha256File(storedFile(id)), source.sha, 'the stored file equals the source');
  assert.equal(Number(await resumed.getByTestId('progress').getAttribute('value')), source.size);
  assert.match(await resumed.getByTestId('numbers').textContent(), /^100 % · 50\.0 MiB of 50\.0 MiB/);
  assert.deepEqual(await savedSessions(page), {}, 'the finished session is forgotten');
  assert.deepEqual(main.problems, []);
});

test('several files picked at once complete; one the server refuses shows its problem', { timeout: 120000 }, async () => {
  assert.ok(main, 'the page of the first test');
  const { page } = main;
  const a = await writeRandom('report.pdf', Math.floor(2.5 * MiB));
  const b = await writeRandom('notes.txt', 300 * 1024);
  // Larger than the server's 10 GiB limit; sparse, so it takes no disk.
  const huge = path.join(work, 'huge.iso');
  const handle = await fs.open(huge, 'w');
  await handle.truncate(11 * 1024 * MiB);
  await handle.close();

  await page.setInputFiles('[data-testid="file-input"]', [a.file, b.file, huge]);
  const refused = rowOf(page, 'huge.iso');
  await waitForState(refused, 'failed', 30000);
  const error = await refused.getByTestId('error').textContent();
  log(`refused: ${error}`);
  assert.match(error, /^Payload Too Large — a file of 11811160064 bytes exceeds the limit of 10737418240 bytes/);
  assert.equal(await refused.getAttribute('data-problem-type'), 'urn:resumable:problem:file-too-large');
  assert.ok(await refused.getByTestId('error').isVisible());
  assert.equal(await refused.getByTestId('error').getAttribute('role'), 'alert');

  for (const file of [a, b]) {
    const row = rowOf(page, path.basename(file.file));
    await waitForState(row, 'done', 60000);
    const id = await row.getAttribute('data-session-id');
    assert.equal(await sha256File(storedFile(id)), file.sha, `${path.basename(file.file)} stored intact`);
  }
  assert.equal(await page.getByTestId('upload').count(), 4);
  assert.deepEqual(main.problems, []);

  // The finished page, for the record.
  const shot = await snapshot(page, 'finished');
  console.log(`screenshot: ${shot}`);
  if (process.env.UPDATE_SCREENSHOT === '1') {
    const doc = path.join(REPO, 'docs', 'browser-page.png');
    await fs.mkdir(path.dirname(doc), { recursive: true });
    await fs.copyFile(shot, doc);
    console.log(`screenshot copied to ${doc}`);
  }

  // A refused file's row can be removed.
  await refused.getByTestId('cancel').click();
  await waitFor('the refused row removed', async () => (await page.getByTestId('upload').count()) === 3, 10000);
  await main.context.close();
});

test('two files dropped on the page both complete', { timeout: 60000 }, async () => {
  const { context, page, problems } = await openPage();
  const files = [
    { name: 'dropped-a.bin', bytes: randomBytes(Math.floor(1.5 * MiB)) },
    { name: 'dropped-b.bin', bytes: randomBytes(200 * 1024) },
  ];
  const transfer = await page.evaluateHandle((list) => {
    const dt = new DataTransfer();
    for (const { name, data } of list) {
      const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
      dt.items.add(new File([bytes], name, { type: 'application/octet-stream' }));
    }
    return dt;
  }, files.map((f) => ({ name: f.name, data: f.bytes.toString('base64') })));
  const zone = page.getByTestId('dropzone');
  await zone.dispatchEvent('dragenter', { dataTransfer: transfer });
  await zone.dispatchEvent('dragover', { dataTransfer: transfer });
  assert.match(await zone.getAttribute('class'), /dragging/, 'the zone shows the drag');
  await zone.dispatchEvent('drop', { dataTransfer: transfer });
  for (const f of files) {
    const row = rowOf(page, f.name);
    await waitForState(row, 'done', 45000);
    const id = await row.getAttribute('data-session-id');
    assert.equal(await sha256File(storedFile(id)), sha256(f.bytes), `${f.name} stored intact`);
  }
  assert.doesNotMatch(await zone.getAttribute('class'), /dragging/);
  assert.deepEqual(problems, []);
  await context.close();
});

test('a session the server no longer has: the page says so and starts over', { timeout: 90000 }, async () => {
  const source = await writeRandom('gone.bin', 4 * MiB);
  const { context, page, network, problems } = await openPage();
  await network({ rate: MiB });
  const row = rowOf(page, 'gone.bin');
  await page.setInputFiles('[data-testid="file-input"]', source.file);
  await waitFor('a chunk stored', async () => (await progress(row)).acked >= 1, 30000);
  await row.getByTestId('pause').click();
  await waitForState(row, 'paused', 10000);
  const oldId = await row.getAttribute('data-session-id');

  // The session ends on the server behind the page's back.
  const res = await fetch(`${BASE_URL}/attachment/session/${oldId}/abort`, { method: 'POST' });
  assert.equal(res.status, 204);

  await page.reload();
  await page.waitForSelector('body[data-ready="true"]', { timeout: 10000 });
  const pending = page.locator('[data-testid="pending-entry"][data-file-name="gone.bin"]');
  await waitFor('the pending entry checked', async () => /no longer on the server/.test(await pending.textContent()), 10000);

  await network();
  await page.setInputFiles('[data-testid="file-input"]', source.file);
  const again = rowOf(page, 'gone.bin');
  await waitForState(again, 'done', 60000);
  const note = await again.getByTestId('note').textContent();
  log(`note: ${note}`);
  assert.match(note, /^The earlier upload of this file is no longer on the server \(it was aborted\); starting over\.$/);
  assert.equal(await again.getAttribute('data-restarted'), 'true');
  const newId = await again.getAttribute('data-session-id');
  assert.notEqual(newId, oldId, 'a new session');
  assert.equal(await sha256File(storedFile(newId)), source.sha);
  assert.deepEqual(problems, []);
  await context.close();
});

test('Cancel aborts the session on the server and forgets it', { timeout: 60000 }, async () => {
  const source = await writeRandom('cancelled.bin', 4 * MiB);
  const { context, page, network, problems } = await openPage();
  await network({ rate: MiB });
  const row = rowOf(page, 'cancelled.bin');
  await page.setInputFiles('[data-testid="file-input"]', source.file);
  await waitFor('a chunk stored', async () => (await progress(row)).acked >= 1, 30000);
  const id = await row.getAttribute('data-session-id');
  assert.equal(Object.keys(await savedSessions(page)).length, 1, 'kept for a reload while running');
  await row.getByTestId('cancel').click();
  await waitForState(row, 'cancelled', 15000);
  assert.match(await row.getByTestId('status').textContent(), /Cancelled: the server deleted/);
  const status = await serverStatus(id);
  assert.ok(status.gone && status.state === 'aborted', `the server says ${JSON.stringify(status)}`);
  assert.deepEqual(await savedSessions(page), {});
  assert.deepEqual(problems, []);
  await context.close();
});
