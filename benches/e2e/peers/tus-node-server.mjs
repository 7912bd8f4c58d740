// The Node peer of the end-to-end benchmark: @tus/server with its file store,
// tus at /files, on 127.0.0.1 only.
//
//   node tus-node-server.mjs PORT DATA_DIR      (PORT 0 picks a free port)
//
// Prints `listening addr=127.0.0.1:PORT` on standard error once it accepts
// connections; stops on SIGTERM or SIGINT.
import http from 'node:http';
import { mkdirSync } from 'node:fs';
import { Server } from '@tus/server';
import { FileStore } from '@tus/file-store';

const [port = '0', directory = './data'] = process.argv.slice(2);
mkdirSync(directory, { recursive: true });
const tus = new Server({ path: '/files', datastore: new FileStore({ directory }) });
const server = http.createServer((req, res) => tus.handle(req, res));
server.listen(Number(port), '127.0.0.1', () => {
  const { address, port: bound } = server.address();
  console.error(`listening addr=${address}:${bound}`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
