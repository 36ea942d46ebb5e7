import { rmSync } from 'node:fs';

export default async function globalTeardown(): Promise<void> {
  if (process.env.OPTGATE_TEST_TMP) rmSync(process.env.OPTGATE_TEST_TMP, { recursive: true, force: true });
}
