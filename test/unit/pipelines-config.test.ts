import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig } from '../../src/platform/config';

/** config/pipelines.json: the systems' display names, optional, checked at start-up naming file and field. */

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'optgate-pipelines-'));
  cpSync(path.join(__dirname, '../../config'), dir, { recursive: true });
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const problemsOf = () => {
  try {
    loadConfig({ CONFIG_DIR: dir });
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.join('\n');
    throw err;
  }
  return '';
};
const write = (content: unknown) =>
  writeFileSync(path.join(dir, 'pipelines.json'), typeof content === 'string' ? content : JSON.stringify(content));

it('ships display names for the systems the documentation and tests use', () => {
  const { pipelines } = loadConfig({});
  expect(pipelines.get('ad-pipeline')).toBe('Our advertising system');
  expect(pipelines.get('demo-pipeline')).toBeTruthy();
  expect(pipelines.has('test-pipeline')).toBe(false);
});

it('is optional: without the file, no system has a name', () => {
  rmSync(path.join(dir, 'pipelines.json'));
  expect(loadConfig({ CONFIG_DIR: dir }).pipelines.size).toBe(0);
});

it('takes comments at any depth, and nothing else unknown', () => {
  write({ $comment: 'x', pipelines: [{ $why: 'y', clientId: 'crm', displayName: 'Our account system' }] });
  expect([...loadConfig({ CONFIG_DIR: dir }).pipelines]).toEqual([['crm', 'Our account system']]);
});

it('refuses mistakes, naming file and field', () => {
  write({
    pipelines: [
      { clientId: 'crm', displayName: 'Our account system' },
      { clientId: 'crm', displayName: 'Another name' },
    ],
  });
  expect(problemsOf()).toMatch(/pipelines\.json: pipelines\.1\.clientId: "crm" is named twice/);
  write({
    pipelines: [
      { clientId: '', displayName: 'x' },
      { clientId: 'a', displayName: 'x'.repeat(81) },
      { clientId: 'b', displayName: ' padded' },
      { clientId: 'c', displayName: 'tab\there' },
      { clientId: 'd', displayName: 'ok', colour: 'red' },
      { clientId: 'e' },
    ],
  });
  const problems = problemsOf();
  expect(problems).toMatch(/pipelines\.json: pipelines\.0\.clientId: /);
  expect(problems).toMatch(/pipelines\.json: pipelines\.1\.displayName: /);
  expect(problems).toMatch(/pipelines\.json: pipelines\.2\.displayName: must not start or end with a space/);
  expect(problems).toMatch(/pipelines\.json: pipelines\.3\.displayName: must hold no control characters/);
  expect(problems).toMatch(/pipelines\.json: pipelines\.4: .*colour/);
  expect(problems).toMatch(/pipelines\.json: pipelines\.5\.displayName: /);
  write({ names: {} });
  expect(problemsOf()).toMatch(/pipelines\.json: (\(root\)|pipelines): /);
  write('{ not json');
  expect(problemsOf()).toMatch(/pipelines\.json: .*JSON/);
});
