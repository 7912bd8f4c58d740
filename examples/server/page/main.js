// The upload page: the picker and the drop zone, the list of uploads, the
// unfinished uploads a reload left in localStorage (checked against the
// server), and the offline banner. Each file's upload is an Upload
// (upload.js).

import { fingerprint, saved } from './saved.js';
import { formatBytes, Upload } from './upload.js';
import { API } from './wire.js';

const uploads = new Set();

function showEmpty() {
  document.getElementById('empty').hidden = uploads.size > 0;
}

function addFiles(files) {
  const list = document.getElementById('uploads');
  for (const file of files) {
    const fp = fingerprint(file);
    const same = [...uploads].find(
      (u) => u.fp === fp && u.state !== 'done' && u.state !== 'cancelled' && u.state !== 'failed',
    );
    if (same) {
      same.note('This file is already in the list.');
      same.row.scrollIntoView({ block: 'nearest' });
      continue;
    }
    const upload = new Upload(file, {
      onRemove: (removed) => {
        uploads.delete(removed);
        showEmpty();
      },
    });
    uploads.add(upload);
    list.append(upload.row);
    upload.render();
    forgetPending(fp);
    upload.start();
  }
  showEmpty();
}

/** Lists the unfinished uploads found in localStorage, checked against the server. */
function listPending() {
  const entries = saved.all();
  const list = document.getElementById('pending-list');
  list.replaceChildren();
  for (const [fp, entry] of Object.entries(entries)) {
    if (!entry || !entry.sessionId) continue;
    const li = document.createElement('li');
    li.dataset.testid = 'pending-entry';
    li.dataset.fingerprint = fp;
    li.dataset.fileName = entry.fileName || '';
    const text = document.createElement('span');
    const name = document.createElement('strong');
    name.textContent = entry.fileName || '(no name)';
    const detail = document.createElement('span');
    detail.dataset.testid = 'pending-detail';
    detail.textContent = ` (${formatBytes(entry.fileSize || 0)}): checking with the server…`;
    text.append(name, detail);
    const discard = document.createElement('button');
    discard.type = 'button';
    discard.className = 'secondary';
    discard.textContent = 'Discard';
    discard.setAttribute('aria-label', `Discard the unfinished upload of ${entry.fileName}`);
    discard.addEventListener('click', async () => {
      discard.disabled = true;
      try {
        await fetch(`${API}/session/${encodeURIComponent(entry.sessionId)}/abort`, {
          method: 'POST',
          signal: AbortSignal.timeout(15000),
        });
      } catch {
        // Offline: the server expires the session by itself.
      }
      saved.remove(fp);
      forgetPending(fp);
    });
    li.append(text, discard);
    list.append(li);
    checkPending(entry, detail);
  }
  document.getElementById('pending').hidden = list.children.length === 0;
}

async function checkPending(entry, detail) {
  const size = formatBytes(entry.fileSize || 0);
  try {
    const res = await fetch(`${API}/session/${encodeURIComponent(entry.sessionId)}`, {
      signal: AbortSignal.timeout(15000),
    });
    const status = res.ok ? await res.json() : null;
    if (status && status.state === 'open') {
      const have = status.receivedChunks.length;
      detail.textContent =
        ` (${size}): ${have} of ${status.totalChunks} chunks on the server, ` +
        `kept until ${new Date(status.expiresAt).toLocaleString()}. Pick the same file again to resume.`;
    } else {
      detail.textContent = ` (${size}): no longer on the server; picking it again starts over.`;
    }
  } catch {
    detail.textContent = ` (${size}): the server cannot be reached now; pick the same file again to resume.`;
  }
}

function forgetPending(fp) {
  const list = document.getElementById('pending-list');
  for (const li of [...list.children]) if (li.dataset.fingerprint === fp) li.remove();
  document.getElementById('pending').hidden = list.children.length === 0;
}

function showNetwork() {
  const banner = document.getElementById('network');
  banner.hidden = navigator.onLine;
  banner.textContent = navigator.onLine
    ? ''
    : 'You are offline. Uploads wait and continue when the connection returns.';
}

function setUp() {
  const input = document.getElementById('file-input');
  input.addEventListener('change', () => {
    addFiles([...input.files]);
    input.value = '';
  });

  const zone = document.getElementById('dropzone');
  let depth = 0;
  zone.addEventListener('dragenter', (e) => {
    e.preventDefault();
    depth += 1;
    zone.classList.add('dragging');
  });
  zone.addEventListener('dragleave', () => {
    depth = Math.max(0, depth - 1);
    if (depth === 0) zone.classList.remove('dragging');
  });
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy';
  });
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    depth = 0;
    zone.classList.remove('dragging');
    if (e.dataTransfer && e.dataTransfer.files.length) addFiles([...e.dataTransfer.files]);
  });
  // A file dropped beside the zone must not make the browser leave the page.
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => e.preventDefault());

  window.addEventListener('online', showNetwork);
  window.addEventListener('offline', showNetwork);
  showNetwork();
  listPending();
  showEmpty();
  document.body.dataset.ready = 'true';
}

setUp();
