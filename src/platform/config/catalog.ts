import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { type RecipientKind, recipientKind } from '../vocabulary';
import { readConfigFile } from './config-file';

/**
 * The catalog says what counts as data and as use. It is configuration, not code:
 * `config/catalog.json` is validated here once, at start-up, and then frozen.
 */

const id = z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, 'must be a lower-case identifier');
/** A regular expression the whole value must match (anchored when used). */
const pattern = z.string().refine((p) => {
  try {
    new RegExp(p, 'u');
    return true;
  } catch {
    return false;
  }
}, 'must be a valid regular expression');

/** config/recipients.json: who data may be sold or disclosed to, or who may access it in place. */
const recipientsFileSchema = z.strictObject({
  recipients: z.array(
    z.strictObject({
      id: z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,63}$/, 'must be 1–64 lower-case letters, digits, ".", "_" or "-"'),
      legalName: z.string().min(1).max(200),
      kind: recipientKind,
      retentionDays: z.number().int().min(0).max(36_500),
    }),
  ),
});

/** A record field's name: any JSON key but a comment ("$…"), without control characters. */
const fieldName = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[^$\p{Cc}][^\p{Cc}]*$/u, 'must be a field name: no control characters, not starting with "$"');

/**
 * config/schemas.json: which top-level fields of a pipeline's records hold which category, so that the streaming filter
 * judges the data and not the declaration. The categories are checked against the catalog in loadCatalog.
 */
const schemasFileSchema = z
  .strictObject({
    schemas: z.array(
      z.strictObject({
        id,
        accountField: fieldName,
        fields: z.record(fieldName, id).refine((f) => Object.keys(f).length > 0, 'must map at least one field'),
        passThrough: z.array(fieldName).default([]),
      }),
    ),
    pipelines: z.record(z.string().min(1).max(256), id).default({}),
  })
  .superRefine((file, ctx) => {
    const ids = new Set<string>();
    file.schemas.forEach((s, i) => {
      if (ids.has(s.id)) ctx.addIssue({ code: 'custom', path: ['schemas', i, 'id'], message: 'declared twice' });
      ids.add(s.id);
      if (s.fields[s.accountField] !== undefined || s.passThrough.includes(s.accountField)) {
        ctx.addIssue({
          code: 'custom',
          path: ['schemas', i, 'accountField'],
          message: 'the account field is neither mapped nor passed through',
        });
      }
      s.passThrough.forEach((f, j) => {
        if (s.fields[f] !== undefined)
          ctx.addIssue({ code: 'custom', path: ['schemas', i, 'passThrough', j], message: `"${f}" is also mapped` });
      });
    });
    for (const [client, schema] of Object.entries(file.pipelines)) {
      if (!ids.has(schema)) ctx.addIssue({ code: 'custom', path: ['pipelines', client], message: 'unknown schema' });
    }
  });

const catalogFileSchema = z
  .strictObject({
    consentTermDays: z.number().int().positive(),
    maxConsentTermDays: z.number().int().positive().optional(),
    decisionReuseSeconds: z.number().int().min(0).max(86_400).default(900),
    categories: z.array(z.strictObject({ id, regime: z.enum(['opt_in', 'opt_out']), label: z.string().min(1) })).min(1),
    purposes: z
      .array(
        z.strictObject({
          id,
          label: z.string().min(1),
          recipientKinds: z.array(recipientKind).min(1).optional(),
          categories: z.array(id).min(1).optional(),
        }),
      )
      .min(1),
    sensitiveCategories: z.array(id).optional(),
    exceptions: z.array(
      z.strictObject({
        id,
        label: z.string().min(1),
        categories: z.array(id).min(1),
        recipientKinds: z.array(recipientKind).min(1).optional(),
        referencePattern: pattern.optional(),
        survivesClosure: z.boolean().default(false),
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
    const optOut = c.categories.filter((x) => x.regime === 'opt_out').map((x) => x.id);
    c.purposes.forEach((p, i) => {
      if (!p.categories) return;
      const problem = (message: string) =>
        ctx.addIssue({ code: 'custom', path: ['purposes', i, 'categories'], message });
      if (new Set(p.categories).size !== p.categories.length) problem('lists a category twice');
      for (const cat of p.categories) if (!categoryIds.has(cat)) problem(`unknown category "${cat}"`);
      // A use of an opt-out category needs no consent: the subscriber must always be able to say no to it.
      for (const cat of optOut)
        if (!p.categories.includes(cat)) problem(`must list the opt-out category "${cat}" (it is used unless refused)`);
    });
    c.sensitiveCategories?.forEach((cat, i) => {
      if (!categoryIds.has(cat))
        ctx.addIssue({ code: 'custom', path: ['sensitiveCategories', i], message: `unknown category "${cat}"` });
    });
    c.exceptions.forEach((e, i) => {
      for (const cat of e.categories) {
        if (!categoryIds.has(cat)) {
          ctx.addIssue({ code: 'custom', path: ['exceptions', i, 'categories'], message: `unknown category "${cat}"` });
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
  /** When set, a request must name a recipient of one of these kinds (sale, disclosure, access in place). */
  readonly recipientKinds?: readonly RecipientKind[];
  /** The categories this purpose may ask for, in the order the portal shows them (every category, unless listed). */
  readonly categories: readonly string[];
}

export interface StatutoryException {
  readonly id: string;
  readonly label: string;
  /** The categories the exception may use; a request for another is `exception_not_applicable`. */
  readonly categories: readonly string[];
  /** When set, a request must name a recipient of one of these kinds (emergency services, a court). */
  readonly recipientKinds?: readonly RecipientKind[];
  /** When set, a request needs a `reference` matching it (a court order's docket number). */
  readonly referencePattern?: RegExp;
  /** Whether the exception still applies once the account is closed (billing and collection, fraud, court orders). */
  readonly survivesClosure: boolean;
}

/** One entry of the recipient registry (config/recipients.json). */
export interface Recipient {
  readonly id: string;
  readonly legalName: string;
  readonly kind: RecipientKind;
  /** How long the recipient may keep what it receives. */
  readonly retentionDays: number;
}

/** A record schema (config/schemas.json): where a pipeline's records hold the account id and each category. */
export interface RecordSchema {
  readonly id: string;
  readonly accountField: string;
  /** Top-level field → the category it holds. A field that is neither mapped nor passed through is unclassified. */
  readonly fields: ReadonlyMap<string, string>;
  /** Fields that hold no customer information (a timestamp): passed as they are. */
  readonly passThrough: ReadonlySet<string>;
  /** The categories the fields hold, each once, in the order of the fields: what the filter judges. */
  readonly categories: readonly string[];
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
  /** How long a caller may reuse any allow, at most (sooner when a consent it relies on expires first). */
  readonly decisionReuseSeconds: number;
  readonly categories: ReadonlyMap<string, Category>;
  readonly purposes: ReadonlyMap<string, Purpose>;
  /** Categories that need their own explicit choice: never granted by a choice made for a whole purpose. */
  readonly sensitive: ReadonlySet<string>;
  readonly exceptions: ReadonlyMap<string, StatutoryException>;
  readonly recipients: ReadonlyMap<string, Recipient>;
  readonly schemas: ReadonlyMap<string, RecordSchema>;
  /** Client id (a token's subject) → the schema every filter request of that pipeline is judged by. */
  readonly pipelineSchemas: ReadonlyMap<string, string>;
  /** In effectiveAt order. */
  readonly notices: readonly Notice[];
  readonly noticesByVersion: ReadonlyMap<string, Notice>;
}

export class CatalogError extends Error {}

/** The sensitive categories when the catalog names none (those of them it has). */
const DEFAULT_SENSITIVE = ['ssn', 'health', 'financial', 'children', 'precise_geolocation', 'communications_content'];

export function loadCatalog(configDir: string): Catalog {
  const file = path.join(configDir, 'catalog.json');
  const c = readOrThrow(file, catalogFileSchema);
  const recipientsFile = path.join(configDir, 'recipients.json');
  const { recipients } = readOrThrow(recipientsFile, recipientsFileSchema, { absent: { recipients: [] } });
  const seen = new Set<string>();
  recipients.forEach((r, i) => {
    if (seen.has(r.id)) throw new CatalogError(`${recipientsFile}: recipients.${i}.id: "${r.id}" is declared twice`);
    seen.add(r.id);
  });
  const schemas = loadSchemas(configDir, new Set(c.categories.map((x) => x.id)));
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
  const allCategories = c.categories.map((x) => x.id);
  const byId = <T extends { id: string }>(xs: T[]) => new Map(xs.map((x) => [x.id, Object.freeze(x)] as const));
  return Object.freeze({
    consentTermDays: c.consentTermDays,
    maxConsentTermDays: c.maxConsentTermDays ?? c.consentTermDays,
    decisionReuseSeconds: c.decisionReuseSeconds,
    categories: byId(c.categories),
    purposes: byId(c.purposes.map((p) => ({ ...p, categories: Object.freeze(p.categories ?? allCategories) }))),
    sensitive: new Set(c.sensitiveCategories ?? DEFAULT_SENSITIVE.filter((x) => allCategories.includes(x))),
    exceptions: byId(
      c.exceptions.map(({ referencePattern, ...e }) => ({
        ...e,
        ...(referencePattern === undefined ? {} : { referencePattern: new RegExp(`^(?:${referencePattern})$`, 'u') }),
      })),
    ),
    recipients: byId(recipients),
    ...schemas,
    notices: Object.freeze(notices),
    noticesByVersion: new Map(notices.map((n) => [n.version, n] as const)),
  });
}

/** config/schemas.json, when there is one: every mapped category must be in the catalog. */
function loadSchemas(configDir: string, categories: ReadonlySet<string>): Pick<Catalog, 'schemas' | 'pipelineSchemas'> {
  const file = path.join(configDir, 'schemas.json');
  const { schemas, pipelines } = readOrThrow(file, schemasFileSchema, { absent: { schemas: [], pipelines: {} } });
  const problems: string[] = [];
  schemas.forEach((s, i) => {
    for (const [field, category] of Object.entries(s.fields)) {
      if (!categories.has(category))
        problems.push(`${file}: schemas.${i}.fields.${field}: unknown category "${category}"`);
    }
  });
  if (problems.length) throw new CatalogError(problems.join('\n'));
  return {
    schemas: new Map(
      schemas.map((s) => {
        const fields = new Map(Object.entries(s.fields));
        const schema: RecordSchema = {
          id: s.id,
          accountField: s.accountField,
          fields,
          passThrough: new Set(s.passThrough),
          categories: Object.freeze([...new Set(fields.values())]),
        };
        return [s.id, Object.freeze(schema)] as const;
      }),
    ),
    pipelineSchemas: new Map(Object.entries(pipelines)),
  };
}

/** A config file as its schema reads it; a problem stops the start. */
function readOrThrow<T>(file: string, schema: z.ZodType<T, unknown>, o: { absent?: T } = {}): T {
  const { data, problems } = readConfigFile(file, schema, o);
  if (problems.length) throw new CatalogError(problems.join('\n'));
  return data!;
}

/** What a purpose or an exception asks of a request's recipient: none, or one of these kinds. */
export function recipientKindsOf(catalog: Catalog, purpose: string): readonly RecipientKind[] | undefined {
  return (catalog.purposes.get(purpose) ?? catalog.exceptions.get(purpose))?.recipientKinds;
}

/** The notice in force at `now`: the latest one whose effectiveAt has come. */
export function currentNotice(catalog: Catalog, now: Date): Notice | undefined {
  let current: Notice | undefined;
  for (const n of catalog.notices) if (n.effectiveAt.getTime() <= now.getTime()) current = n;
  return current;
}
