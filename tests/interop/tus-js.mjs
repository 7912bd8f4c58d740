// Uploads a file with tus-js-client and prints the upload's URL as JSON.
//
//   node tus-js.mjs <endpoint> <file> <mode>
//
// Modes:
//   chunked    5 MiB PATCHes, one after another
//   parallel   4 partial uploads in parallel, then their concatenation
//   resume     aborted at about half, then resumed from its stored URL
//   ietf-draft-03, ietf-draft-05
//              the IETF resumable-upload draft (interop versions 5 and 6)
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import * as tus from 'tus-js-client';

const [endpoint, file, mode] = process.argv.slice(2);
const data = readFileSync(file);
const CHUNK = 5 * 1024 * 1024;

function upload(options) {
  return new Promise((resolve, reject) => {
    const u = new tus.Upload(data, {
      endpoint,
      chunkSize: CHUNK,
      retryDelays: [0, 200, 500],
      metadata: { filename: basename(file), filetype: 'application/octet-stream' },
      ...options,
      onError: reject,
      onSuccess: () => resolve(u),
    });
    if (options.onStart) options.onStart(u);
    u.start();
  });
}

async function resumed() {
  // The first attempt stops itself at about half of the file.
  let stoppedAt = 0;
  const url = await new Promise((resolve, reject) => {
    const first = new tus.Upload(data, {
      endpoint,
      chunkSize: CHUNK,
      retryDelays: null,
      metadata: { filename: basename(file) },
      onError: reject,
      onSuccess: () => reject(new Error('the first attempt was meant to be stopped')),
      onChunkComplete: (_chunk, accepted, total) => {
        if (accepted >= total / 2 && !stoppedAt) {
          stoppedAt = accepted;
          first.abort(false).then(() => resolve(first.url), reject);
        }
      },
    });
    first.start();
  });
  // The second starts from the stored URL and asks the server for the offset.
  const second = await upload({ uploadUrl: url, endpoint: undefined });
  if (second.url !== url) throw new Error(`resumed at ${second.url}, not ${url}`);
  return { url, resumedFrom: stoppedAt };
}

let result;
switch (mode) {
  case 'chunked':
    result = { url: (await upload({})).url };
    break;
  case 'parallel':
    result = { url: (await upload({ parallelUploads: 4 })).url };
    break;
  case 'resume':
    result = await resumed();
    break;
  case 'ietf-draft-03':
  case 'ietf-draft-05':
    result = { url: (await upload({ protocol: mode })).url };
    break;
  default:
    throw new Error(`unknown mode ${mode}`);
}
process.stdout.write(JSON.stringify(result) + '\n');
