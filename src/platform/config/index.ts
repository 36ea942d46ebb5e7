import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { type Brand, loadBrand } from './brand';
import { type Catalog, CatalogError, loadCatalog } from './catalog';
import { loadMessages, type Messages } from './messages';
import { loadPipelines, type PipelineNames } from './pipelines';
import { projectRoot } from './project-root';

export type { Brand } from './brand';
export type { Catalog } from './catalog';
export type { PipelineNames } from './pipelines';

/**
 * The one configuration: parsed once from the environment and config/, then frozen.
 * Nothing else reads process.env. A bad value stops the start with a message naming it.
 */

const boolean = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/** Waits before each retry of a webhook delivery: 5 s, 30 s, 2 min, 10 min, 1 h, 3 h, 6 h, 12 h, 12 h (34 h in all). */
const DEFAULT_RETRY_SCHEDULE_MS = [
  5_000, 30_000, 120_000, 600_000, 3_600_000, 10_800_000, 21_600_000, 43_200_000, 43_200_000,
];

const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  PORT: int(0, 65535).default(8080),
  HOST: z.string().min(1).default('0.0.0.0'),
  TRUST_PROXY: z.string().min(1).default('loopback'),
  DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }).default('postgres://localhost:5432/optgate'),
  DATABASE_OWNER_URL: z.url({ protocol: /^postgres(ql)?$/ }).optional(),
  DB_POOL_SIZE: int(1, 200).default(20),
  DB_STATEMENT_TIMEOUT_MS: int(50, 120_000).default(2000),
  REDIS_URL: z.url({ protocol: /^rediss?$/ }).default('redis://127.0.0.1:6379'),
  REDIS_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9:_-]{1,64}$/)
    .default('optgate'),
  REDIS_COMMAND_TIMEOUT_MS: int(50, 60_000).default(1000),
  CONFIG_DIR: z.string().min(1).optional(),
  KEYS_DIR: z.string().min(1).optional(),
  JWKS_URL: z.url({ protocol: /^https?$/ }).optional(),
  JWKS_FILE: z.string().min(1).optional(),
  SIGNING_KEY_FILE: z.string().min(1).optional(),
  RETIRED_KEYS_FILE: z.string().min(1).optional(),
  EVIDENCE_HMAC_KEY: z.string().min(32, 'must be at least 32 characters').optional(),
  TOKEN_ISSUER: z.string().min(1).optional(),
  TOKEN_AUDIENCE: z.string().min(1).default('optgate'),
  EXPIRY_SWEEP_INTERVAL_MS: int(1000, 86_400_000).default(60_000),
  AUDIT_DECISIONS: boolean.default(true),
  FILTER_ALLOW_DECLARED: boolean.default(false),
  BATCH_CONCURRENCY: int(1, 64).default(2),
  BATCH_QUEUE_TIMEOUT_MS: int(100, 600_000).default(15_000),
  AUDIT_CHECKPOINT_INTERVAL_MS: int(100, 86_400_000).default(1000),
  AUDIT_VERIFY_INTERVAL_MS: int(1000, 7 * 86_400_000).default(3_600_000),
  AUDIT_VERIFY_MAX_RECORDS: int(100, 1_000_000_000).default(1_000_000),
  AUDIT_ROLLUP_INTERVAL_MS: int(1000, 86_400_000).default(60_000),
  EXPORT_MAX_PENDING: int(1, 100).default(2),
  EXPORT_RETENTION_HOURS: int(1, 87_600).default(168),
  EXPORT_PACE_PERCENT: int(1, 100).default(50),
  AUDIT_RETENTION_MONTHS: int(1, 1200).default(24),
  AUDIT_ARCHIVE_DIR: z.string().min(1).default('var/audit-archive'),
  AUDIT_PSEUDONYMISE_AFTER_DAYS: int(0, 36_500).default(365),
  PORTAL_TOKEN_AUDIENCE: z.string().min(1).default('optgate-portal'),
  PORTAL_BASE_URL: z.url({ protocol: /^https?$/ }).optional(),
  PORTAL_IDLE_SECONDS: int(1, 86_400).default(900),
  PORTAL_EXPIRING_DAYS: int(1, 365).default(30),
  PORTAL_SESSION_MAX_HOURS: int(1, 72).default(8),
  PORTAL_COOKIE_SECURE: boolean.optional(),
  PORTAL_SIGNIN_PER_MINUTE: int(1, 10_000).default(20),
  CONSOLE_TOKEN_AUDIENCE: z.string().min(1).default('optgate-console'),
  CONSOLE_IDLE_SECONDS: int(1, 86_400).default(900),
  CONSOLE_SESSION_MAX_HOURS: int(1, 24).default(8),
  CONSOLE_SIGNIN_PER_MINUTE: int(1, 10_000).default(20),

  CACHE_ENABLED: boolean.default(true),
  CACHE_MAX_ENTRIES: int(1, 100_000_000).default(2_000_000),
  CACHE_MAX_MB: int(1, 1_000_000).default(1024),
  CACHE_LEASE_MS: int(200, 60_000).default(2000),
  WEBHOOK_ALLOWED_HOSTS: z
    .string()
    .regex(/^[A-Za-z0-9.:/_-]+(,[A-Za-z0-9.:/_-]+)*$/, 'comma-separated host names, addresses or CIDR networks')
    .optional(),
  WEBHOOK_RETRY_SCHEDULE_MS: z
    .string()
    .regex(/^\d{1,9}(,\d{1,9}){0,29}$/, 'comma-separated waits in milliseconds')
    .default(DEFAULT_RETRY_SCHEDULE_MS.join(',')),
  WEBHOOK_TIMEOUT_MS: int(100, 60_000).default(10_000),
  WEBHOOK_TICK_MS: int(50, 60_000).default(250),
  WEBHOOK_EXPIRING_DAYS: int(1, 365).default(7),
  WEBHOOK_EXPIRING_SCAN_MS: int(100, 86_400_000).default(300_000),
  RUN_WORKERS: z.enum(['true', 'false', '1', '0', 'only']).default('true'),
  SHUTDOWN_TIMEOUT_MS: int(0, 600_000).default(10_000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export interface AppConfig {
  readonly env: 'development' | 'production' | 'test';
  readonly http: {
    readonly port: number;
    readonly host: string;
    readonly shutdownTimeoutMs: number;
    /**
     * Express's "trust proxy": whose X-Forwarded-For is believed (it feeds the sign-in rate limit and the evidence
     * hashes).
     */
    readonly trustProxy: string;
  };
  readonly db: {
    /** What the service connects as (outside production, possibly an administrator's: see db/roles.ts). */
    readonly url: string;
    /** The owner's connection, for migrations. */
    readonly ownerUrl: string | undefined;
    readonly poolSize: number;
    readonly statementTimeoutMs: number;
    /** Months of audit log kept online; the owner writes it into the database when it migrates. */
    readonly auditRetentionMonths: number;
  };
  readonly redis: { readonly url: string; readonly prefix: string; readonly commandTimeoutMs: number };
  readonly auth: {
    /** Development only: where the local key pair and secrets are generated. */
    readonly keysDir: string;
    readonly jwksUrl?: string;
    readonly jwksFile?: string;
    readonly signingKeyFile?: string;
    /** Public keys that signed before a rotation (a JWKS), still served and trusted for verification. */
    readonly retiredKeysFile: string;
    readonly evidenceHmacKey?: string;
    readonly issuer: string;
    readonly audience: string;
  };
  readonly workers: {
    /** This instance runs the background jobs. */
    readonly enabled: boolean;
    /** false for a worker-only instance (`RUN_WORKERS=only`): it serves /healthz, /readyz and /metrics only. */
    readonly serveApi: boolean;
    readonly expirySweepIntervalMs: number;
    readonly checkpointIntervalMs: number;
    /** The scheduled verification of the log (audit-verify): its interval, and the records one run checks at most. */
    readonly verifyIntervalMs: number;
    readonly verifyMaxRecords: number;
    /** How often the console charts' hourly counts are brought up to date. */
    readonly rollupIntervalMs: number;
  };
  /** Per client: exports queued or running at once; how long a finished export's file is kept. */
  readonly exports: { readonly maxPendingPerClient: number; readonly retentionMs: number; readonly pace: number };
  /**
   * Where months of the audit log past the retention are archived (db.auditRetentionMonths), and
   * after how long closed accounts' ids are pseudonymised in what is archived.
   */
  readonly archive: { readonly dir: string; readonly pseudonymiseAfterMs: number; readonly pace: number };
  /** false only for benchmarks that measure what the durable audit costs; refused in production. */
  readonly auditDecisions: boolean;
  /**
   * Whether the streaming filter may judge records by the categories a caller declares (no record schema): that takes
   * the caller's word for what the records hold. Off unless an operator turns it on.
   */
  readonly filterAllowDeclared: boolean;
  /** The consent cache of each instance (docs/cache.md). */
  readonly cache: {
    readonly enabled: boolean;
    readonly maxEntries: number;
    readonly maxBytes: number;
    readonly leaseMs: number;
  };
  /** Batch decisions evaluated at once per instance, and how long another may wait for its turn. */
  readonly batches: { readonly concurrency: number; readonly queueTimeoutMs: number };
  readonly logLevel: z.infer<typeof envSchema>['LOG_LEVEL'];
  readonly configDir: string;
  readonly catalog: Catalog;
  readonly messages: Messages;
  /** The ISP's name, logo, colours and contacts (config/brand.json). */
  readonly brand: Brand;
  /** What subscribers call the ISP's systems, by client id (config/pipelines.json; empty without it). */
  readonly pipelines: PipelineNames;
  /** Signed webhooks (docs/webhooks.md). */
  readonly webhooks: {
    /** Development: receivers may be anywhere, loopback and private networks included. */
    readonly allowPrivate: boolean;
    /** Host names, addresses or CIDR networks a receiver may use although not public. */
    readonly allowList: readonly string[];
    /** Waits before each retry; once they are used up, the delivery is dead. */
    readonly retryScheduleMs: readonly number[];
    /** One attempt, connection to answer. */
    readonly timeoutMs: number;
    /** How often the workers look for new events and due deliveries. */
    readonly tickMs: number;
    /** `consent.expiring` goes out this many days before a grant's term ends. */
    readonly expiringDays: number;
    /** How often the grants coming to their end are looked for. */
    readonly expiringScanMs: number;
  };
  readonly portal: {
    readonly tokenAudience: string;
    /** Where subscribers reach the portal: sign-in links point here. */
    readonly baseUrl: string;
    readonly idleSeconds: number;
    /** A permission expiring within this many days is listed at the top of the choices page. */
    readonly expiringDays: number;
    readonly sessionMaxHours: number;
    readonly cookieSecure: boolean;
    readonly signInPerMinute: number;
  };
  /** The compliance console (staff): sign-in tokens, sessions. Its cookie's `secure` follows the portal's. */
  readonly console: {
    readonly tokenAudience: string;
    readonly idleSeconds: number;
    readonly sessionMaxHours: number;
    readonly signInPerMinute: number;
  };
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

export function loadConfig(env: Record<string, string | undefined> = process.env): AppConfig {
  // An empty variable means "not set", as in most shells' `FOO= cmd`.
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`));
  }
  const e = parsed.data;
  const problems: string[] = [];
  if (e.JWKS_URL && e.JWKS_FILE) problems.push('JWKS_URL and JWKS_FILE: set one, not both');
  for (const entry of e.WEBHOOK_ALLOWED_HOSTS?.split(',') ?? []) {
    const [address = '', bits] = entry.split('/');
    const family = isIP(address);
    const badNetwork =
      bits !== undefined && (!family || !/^\d+$/.test(bits) || Number(bits) > (family === 4 ? 32 : 128));
    if (badNetwork || (!family && /^[\d.]+$/.test(address))) {
      problems.push(`WEBHOOK_ALLOWED_HOSTS: ${entry} is not a host name, an address or a CIDR network`);
    }
  }
  if (e.NODE_ENV === 'production') {
    // No default secrets in production: every key comes from the operator.
    if (!e.JWKS_URL && !e.JWKS_FILE) problems.push('JWKS_URL or JWKS_FILE: required in production');
    if (!e.SIGNING_KEY_FILE) problems.push('SIGNING_KEY_FILE: required in production');
    if (!e.EVIDENCE_HMAC_KEY) problems.push('EVIDENCE_HMAC_KEY: required in production');
    if (!e.TOKEN_ISSUER) problems.push('TOKEN_ISSUER: required in production');
    if (!e.AUDIT_DECISIONS) problems.push('AUDIT_DECISIONS: cannot be turned off in production');
  }
  const root = projectRoot();
  const configDir = path.resolve(root, e.CONFIG_DIR ?? 'config');
  let catalog: Catalog | undefined;
  try {
    catalog = loadCatalog(configDir);
  } catch (err) {
    if (!(err instanceof CatalogError)) throw err;
    problems.push(...err.message.split('\n'));
  }
  const loaded = catalog ? loadMessages(configDir, catalog) : { problems: [] };
  problems.push(...loaded.problems);
  const branded = loadBrand(configDir);
  problems.push(...branded.problems);
  const named = loadPipelines(configDir);
  problems.push(...named.problems);
  if (problems.length || !catalog || !loaded.messages || !branded.brand || !named.pipelines) {
    throw new ConfigError(problems);
  }

  return deepFreeze({
    env: e.NODE_ENV,
    http: { port: e.PORT, host: e.HOST, shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS, trustProxy: e.TRUST_PROXY },
    db: {
      url: withDefaultUser(e.DATABASE_URL, env),
      ownerUrl: e.DATABASE_OWNER_URL && withDefaultUser(e.DATABASE_OWNER_URL, env),
      poolSize: e.DB_POOL_SIZE,
      statementTimeoutMs: e.DB_STATEMENT_TIMEOUT_MS,
      auditRetentionMonths: e.AUDIT_RETENTION_MONTHS,
    },
    redis: { url: e.REDIS_URL, prefix: e.REDIS_PREFIX, commandTimeoutMs: e.REDIS_COMMAND_TIMEOUT_MS },
    auth: {
      keysDir: path.resolve(root, e.KEYS_DIR ?? '.keys'),
      jwksUrl: e.JWKS_URL,
      jwksFile: e.JWKS_FILE && path.resolve(root, e.JWKS_FILE),
      signingKeyFile: e.SIGNING_KEY_FILE && path.resolve(root, e.SIGNING_KEY_FILE),
      retiredKeysFile: path.resolve(
        root,
        e.RETIRED_KEYS_FILE ??
          (e.SIGNING_KEY_FILE
            ? path.join(path.dirname(e.SIGNING_KEY_FILE), 'retired.jwks.json')
            : path.join(e.KEYS_DIR ?? '.keys', 'retired.jwks.json')),
      ),
      evidenceHmacKey: e.EVIDENCE_HMAC_KEY,
      issuer: e.TOKEN_ISSUER ?? 'optgate-dev',
      audience: e.TOKEN_AUDIENCE,
    },
    workers: {
      enabled: e.RUN_WORKERS !== 'false' && e.RUN_WORKERS !== '0',
      serveApi: e.RUN_WORKERS !== 'only',
      expirySweepIntervalMs: e.EXPIRY_SWEEP_INTERVAL_MS,
      checkpointIntervalMs: e.AUDIT_CHECKPOINT_INTERVAL_MS,
      verifyIntervalMs: e.AUDIT_VERIFY_INTERVAL_MS,
      verifyMaxRecords: e.AUDIT_VERIFY_MAX_RECORDS,
      rollupIntervalMs: e.AUDIT_ROLLUP_INTERVAL_MS,
    },
    exports: {
      maxPendingPerClient: e.EXPORT_MAX_PENDING,
      retentionMs: e.EXPORT_RETENTION_HOURS * 3_600_000,
      pace: e.EXPORT_PACE_PERCENT / 100,
    },
    archive: {
      dir: path.resolve(root, e.AUDIT_ARCHIVE_DIR),
      pseudonymiseAfterMs: e.AUDIT_PSEUDONYMISE_AFTER_DAYS * 86_400_000,
      pace: e.EXPORT_PACE_PERCENT / 100,
    },
    auditDecisions: e.AUDIT_DECISIONS,
    filterAllowDeclared: e.FILTER_ALLOW_DECLARED,
    cache: {
      enabled: e.CACHE_ENABLED,
      maxEntries: e.CACHE_MAX_ENTRIES,
      maxBytes: e.CACHE_MAX_MB * 2 ** 20,
      leaseMs: e.CACHE_LEASE_MS,
    },
    batches: { concurrency: e.BATCH_CONCURRENCY, queueTimeoutMs: e.BATCH_QUEUE_TIMEOUT_MS },
    logLevel: e.LOG_LEVEL,
    configDir,
    catalog,
    messages: loaded.messages,
    brand: branded.brand,
    pipelines: named.pipelines,
    webhooks: {
      allowPrivate: e.NODE_ENV === 'development',
      allowList: e.WEBHOOK_ALLOWED_HOSTS?.split(',') ?? [],
      retryScheduleMs: e.WEBHOOK_RETRY_SCHEDULE_MS.split(',').map(Number),
      timeoutMs: e.WEBHOOK_TIMEOUT_MS,
      tickMs: e.WEBHOOK_TICK_MS,
      expiringDays: e.WEBHOOK_EXPIRING_DAYS,
      expiringScanMs: e.WEBHOOK_EXPIRING_SCAN_MS,
    },
    portal: {
      tokenAudience: e.PORTAL_TOKEN_AUDIENCE,
      baseUrl: (e.PORTAL_BASE_URL ?? `http://localhost:${e.PORT}`).replace(/\/$/, ''),
      idleSeconds: e.PORTAL_IDLE_SECONDS,
      expiringDays: e.PORTAL_EXPIRING_DAYS,
      sessionMaxHours: e.PORTAL_SESSION_MAX_HOURS,
      cookieSecure: e.PORTAL_COOKIE_SECURE ?? e.NODE_ENV === 'production',
      signInPerMinute: e.PORTAL_SIGNIN_PER_MINUTE,
    },
    console: {
      tokenAudience: e.CONSOLE_TOKEN_AUDIENCE,
      idleSeconds: e.CONSOLE_IDLE_SECONDS,
      sessionMaxHours: e.CONSOLE_SESSION_MAX_HOURS,
      signInPerMinute: e.CONSOLE_SIGNIN_PER_MINUTE,
    },
  });
}

/**
 * A URL without a user name connects as PGUSER, else as the operating-system user, as psql does
 * (pg itself would fall back to $USER, which is often unset in containers and CI).
 */
function withDefaultUser(url: string, env: Record<string, string | undefined>): string {
  const u = new URL(url);
  if (!u.username) u.username = encodeURIComponent(env.PGUSER || os.userInfo().username);
  return u.toString();
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !(value instanceof Map) && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
