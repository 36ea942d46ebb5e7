#!/usr/bin/env node
import { ConfigError } from '../platform/config';
import { UsageError } from './args';
import { auditCommand } from './audit.command';
import { demoCommand } from './demo.command';
import { keysCommand } from './keys.command';
import { migrateCommand } from './migrate.command';
import { portalLinkCommand } from './portal-link.command';
import { staffLinkCommand } from './staff-link.command';
import { tokenCommand } from './token.command';

/** `optgate <command>`: operator tools. Results go to stdout, problems to stderr; exit 2 is a usage error. */

const commands: Record<string, { summary: string; run: (args: string[]) => Promise<number> }> = {
  migrate: { summary: 'create the database if needed and apply migrations', run: migrateCommand },
  audit: {
    summary:
      'the audit log: verify FILE --manifest M --jwks J | verify --db [--archives DIR] | archive | prove | ' +
      'verify-proof | verify-consistency',
    run: auditCommand,
  },
  demo: {
    summary:
      'seed demo data into the running service and print a portal link, a token and curl commands: ' +
      '[--accounts 200] [--url http://localhost:8080] [--seed 1] [--webhook-url URL]',
    run: demoCommand,
  },
  keys: { summary: 'rotate the signing key: keys rotate (the old key stays in the JWKS, retired)', run: keysCommand },
  'portal-link': {
    summary: 'print a portal sign-in URL: --account ID [--ttl 10m] [--base URL]',
    run: portalLinkCommand,
  },
  'staff-link': {
    summary:
      'print a one-use compliance console sign-in URL: --sub NAME --role compliance|support [--ttl 10m] [--base URL]',
    run: staffLinkCommand,
  },
  token: {
    summary:
      'print a signed API token: --sub NAME --scope "decisions ..." --purposes a,b [--ttl 1h] [--subscriber-channel]',
    run: tokenCommand,
  },
};

async function main([name, ...args]: string[]): Promise<number> {
  const command = name ? commands[name] : undefined;
  if (!command) {
    const list = Object.entries(commands).map(([n, c]) => `  ${n.padEnd(12)} ${c.summary}`);
    process.stderr.write(`usage: optgate <command> [options]\n\n${list.join('\n')}\n`);
    return name === undefined || name === 'help' || name === '--help' ? 0 : 2;
  }
  return command.run(args);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    const expected = err instanceof UsageError || err instanceof ConfigError;
    process.stderr.write(`optgate: ${expected ? err.message : (err.stack ?? err.message)}\n`);
    process.exit(err instanceof UsageError ? 2 : 1);
  },
);
