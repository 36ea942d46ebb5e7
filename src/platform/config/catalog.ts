import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

/**
 * The catalog says what counts as data and as use. It is configuration, not code:
 * `config/catalog.json` is validated here once, at start-up, and then frozen.
 */

const id = z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, 'must be a lower-case identifier');

const catalogFileSchema = z
  .strictObject({
    consentTermDays: z.number().int().positive(),
    maxConsentTermDays: z.number().int().positive().optional(),
    decisionReuseSeconds: z.number().int().min(0).max(86_400).default(300),
    categories: z.array(z.strictObject({ id, regime: z.enum(['opt_in', 'opt_out']), label: z.string().min(1) })).min(1),
    purposes: z.array(z.strictObject({ id, label: z.string().min(1) })).min(1),
    exceptions: z.array(
      z.strictObject({
        id,
        label: z.string().min(1),
        requiresReference: z.boolean().optional(),
        onlyCategories: z.array(id).min(1).optional(),
      }),
    ),
    notices: z
      .array(
        z.strictObject({
          version: z.string().regex(/^[A-Za-z0-9._-]{1,32}$/),
          effectiveAt: z.iso.datetime({ offset: true }),
          file: z.string().min(1),
          materialFor: z.array(id).default([]),
        }),
      )
      .min(1),
  })
  .superRefine((c, ctx) => {
    const categoryIds = new Set(c.categories.map((x) => x.id));
    const consentPurposes = new Set(c.purposes.map((x) => x.id));
    const all = [...c.categories.map((x) => x.id), ...c.purposes.map((x) => x.id), ...c.exceptions.map((x) => x.id)];
    const seen = new Set<string>();
    for (const name of all) {
      if (seen.has(name)) ctx.addIssue({ code: 'custom', message: `identifier "${name}" is declared twice` });
      seen.add(name);
    }
    if ((c.maxConsentTermDays ?? c.consentTermDays) < c.consentTermDays) {
      ctx.addIssue({
        code: 'custom',
        path: ['maxConsentTermDays'],
        message: 'must not be shorter than consentTermDays',
      });
    }
    c.exceptions.forEach((e, i) => {
      for (const cat of e.onlyCategories ?? []) {
        if (!categoryIds.has(cat)) {
          ctx.addIssue({
            code: 'custom',
            path: ['exceptions', i, 'onlyCategories'],
            message: `unknown category "${cat}"`,
          });
        }
      }
    });
    const versions = new Set<string>();
    c.notices.forEach((n, i) => {
      if (versions.has(n.version))
        ctx.addIssue({ code: 'custom', path: ['notices', i, 'version'], message: 'duplicate notice version' });
      versions.add(n.version);
      n.materialFor.forEach((p) => {
        if (!consentPurposes.has(p))
          ctx.addIssue({
            code: 'custom',
            path: ['notices', i, 'materialFor'],
            message: `"${p}" is not a purpose that needs consent`,
          });
      });
      if (i > 0 && Date.parse(n.effectiveAt) <= Date.parse(c.notices[i - 1]!.effectiveAt)) {
        ctx.addIssue({
          code: 'custom',
          path: ['notices', i, 'effectiveAt'],
          message: 'notices must be listed in increasing effectiveAt order',
        });
      }
    });
  });

export type Regime = 'opt_in' | 'opt_out';

export interface Category {
  readonly id: string;
  readonly regime: Regime;
  readonly label: string;
}

export interface Purpose {
  readonly id: string;
  readonly label: string;
}

export interface StatutoryException {
  readonly id: string;
  readonly label: string;
  readonly requiresReference: boolean;
  /** When set, the exception covers only these categories. */
  readonly onlyCategories?: readonly string[];
}

export interface Notice {
  readonly version: string;
  readonly effectiveAt: Date;
  readonly sha256: string;
  /** Purposes for which this version is a material change: older opt-ins for them stop counting. */
  readonly materialFor: readonly string[];
  readonly text: string;
  /** Position in effectiveAt order, so that notice versions compare cheaply. */
  readonly ordinal: number;
}

export interface Catalog {
  readonly consentTermDays: number;
  readonly maxConsentTermDays: number;
  /** How long a caller may reuse an allow that relies on no expiring consent. */
  readonly decisionReuseSeconds: number;
  readonly categories: ReadonlyMap<string, Category>;
  readonly purposes: ReadonlyMap<string, Purpose>;
  readonly exceptions: ReadonlyMap<string, StatutoryException>;
  /** In effectiveAt order. */
  readonly notices: readonly Notice[];
  readonly noticesByVersion: ReadonlyMap<string, Notice>;
}

export class CatalogError extends Error {}

export function loadCatalog(configDir: string): Catalog {
  const file = path.join(configDir, 'catalog.json');
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new CatalogError(`${file}: ${(err as Error).message}`);
  }
  const parsed = catalogFileSchema.safeParse(withoutComments(raw));
  if (!parsed.success) {
    throw new CatalogError(
      parsed.error.issues.map((i) => `${file}: ${i.path.join('.') || '(root)'}: ${i.message}`).join('\n'),
    );
  }
  const c = parsed.data;
  const notices = c.notices.map((n, ordinal): Notice => {
    const noticeFile = path.resolve(configDir, n.file);
    let text: string;
    try {
      text = readFileSync(noticeFile, 'utf8');
    } catch (err) {
      throw new CatalogError(`${file}: notices.${ordinal}.file: ${(err as Error).message}`);
    }
    return Object.freeze({
      version: n.version,
      effectiveAt: new Date(n.effectiveAt),
      sha256: createHash('sha256').update(text).digest('hex'),
      materialFor: Object.freeze([...n.materialFor]),
      text,
      ordinal,
    });
  });
  const byId = <T extends { id: string }>(xs: T[]) => new Map(xs.map((x) => [x.id, Object.freeze(x)] as const));
  return Object.freeze({
    consentTermDays: c.consentTermDays,
    maxConsentTermDays: c.maxConsentTermDays ?? c.consentTermDays,
    decisionReuseSeconds: c.decisionReuseSeconds,
    categories: byId(c.categories),
    purposes: byId(c.purposes),
    exceptions: byId(c.exceptions.map((e) => ({ ...e, requiresReference: e.requiresReference ?? false }))),
    notices: Object.freeze(notices),
    noticesByVersion: new Map(notices.map((n) => [n.version, n] as const)),
  });
}

/** The notice in force at `now`: the latest one whose effectiveAt has come. */
export function currentNotice(catalog: Catalog, now: Date): Notice | undefined {
  let current: Notice | undefined;
  for (const n of catalog.notices) if (n.effectiveAt.getTime() <= now.getTime()) current = n;
  return current;
}

/** Keys starting with "$" are comments; every other unknown key is a typo and refused. */
function withoutComments(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutComments);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([k]) => !k.startsWith('$'))
        .map(([k, v]) => [k, withoutComments(v)]),
    );
  }
  return value;
}
