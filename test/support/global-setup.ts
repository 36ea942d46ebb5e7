import { mkdtempSync } from 'node:fs';
import { Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** Tests need the real PostgreSQL and Redis: say so plainly when one is not answering. */
export default async function globalSetup(): Promise<void> {
  const reachable = (port: number) =>
    new Promise<boolean>((resolve) => {
      const s = new Socket();
      s.setTimeout(2000);
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
      s.once('timeout', () => {
        s.destroy();
        resolve(false);
      });
      s.connect(port, '127.0.0.1');
    });
  const missing = [];
  if (!(await reachable(5432))) missing.push('PostgreSQL on 127.0.0.1:5432');
  if (!(await reachable(6379))) missing.push('Redis on 127.0.0.1:6379');
  if (missing.length)
    throw new Error(`tests need ${missing.join(' and ')}: start them (see README) or run bash .ci/run`);
  // One temporary folder for the whole run (development keys, shared by every test process); removed by the teardown.
  process.env.OPTGATE_TEST_TMP = mkdtempSync(path.join(os.tmpdir(), 'optgate-test-'));
}
