import { execFileSync } from 'node:child_process';
import path from 'node:path';

/** optgate/client as a dependant loads it: by package name, from the build (npm test builds before jest runs). */

const ROOT = path.join(__dirname, '..', '..');

it('require("optgate/client") loads the built client, and nothing of the server', () => {
  const script = [
    "const client = require('optgate/client');",
    'const server = /node_modules\\/(express|pg|ioredis|kysely|bullmq)\\//;',
    'const loaded = Object.keys(require.cache).filter((f) => server.test(f));',
    "const resolved = require.resolve('optgate/client');",
    'console.log(JSON.stringify({ exports: Object.keys(client).sort(), loaded, resolved }));',
  ].join('\n');
  const out = JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: ROOT }).toString());
  expect(out.exports).toEqual(
    expect.arrayContaining(['AllowCache', 'OptgateClient', 'createClient', 'verifyWebhook', 'OptgateProblemError']),
  );
  expect(out.loaded).toEqual([]);
  expect(out.resolved).toBe(path.join(ROOT, 'dist', 'src', 'client', 'index.js'));
});
