import { randomUUID } from 'node:crypto';
import type { AccountVerdict, DecisionHeader } from '../audit';
import { assertPurposeAllowed } from '../platform/auth/middleware';
import type { Principal } from '../platform/auth/principal';
import type { Semaphore } from '../platform/concurrency';
import { type Catalog, recipientKindsOf } from '../platform/config/catalog';
import { AppError, type FieldProblem, validationError } from '../platform/errors';
import type { Metrics } from '../platform/metrics';
import { withTimeout } from '../platform/timeout';
import type { DecisionEndpoint } from '../platform/vocabulary';
import type { AccountState } from './decision.repository';
import { type CategoryResult, type ConsentSnapshot, evaluate, type Subject, type Verdict } from './engine';
import type { FilterJudge, FilterMode, FilterPlan } from './filter';

export const MAX_BATCH_ACCOUNTS = 10_000;

export interface DecisionRequest {
  readonly accountId: string;
  readonly purpose: string;
  readonly categories: readonly string[];
  readonly recipient?: string;
  readonly reference?: string;
}

export interface BatchRequest extends Omit<DecisionRequest, 'accountId'> {
  readonly accountIds: readonly string[];
}

/** A streaming filter call: judged by the declared categories, or by a record schema (named, or the pipeline's). */
export interface FilterRequest extends Omit<BatchRequest, 'accountIds' | 'categories'> {
  readonly categories?: readonly string[];
  readonly schema?: string;
  readonly mode?: FilterMode;
  readonly accountField?: string;
}

export interface Decision {
  readonly decisionId: string;
  readonly accountId: string;
  readonly purpose: string;
  readonly allow: boolean;
  readonly evaluatedAt: Date;
  readonly validUntil?: Date;
  readonly results: readonly CategoryResult[];
}

export interface BatchDecision {
  readonly decisionId: string;
  readonly purpose: string;
  readonly evaluatedAt: Date;
  readonly results: readonly {
    readonly accountId: string;
    readonly allow: boolean;
    readonly validUntil?: Date;
    readonly denied?: readonly { readonly category: string; readonly reason: string }[];
  }[];
}

export interface DecisionDeps {
  /** Account status and consent state: from the instance's exact cache, or read through to PostgreSQL. */
  readonly subjects: { getMany(accountIds: readonly string[]): Promise<Map<string, AccountState>> };
  readonly catalog: Catalog;
  readonly clock: () => Date;
  readonly metrics: Metrics;
  /**
   * Durable audit: a decision is answered only once its records are committed. Absent only when turned off for a
   * benchmark.
   */
  readonly audit?: { recordDecision(header: DecisionHeader, verdicts: readonly AccountVerdict[]): Promise<void> };
  readonly batches: Semaphore;
  /**
   * Bound on reading what a decision needs and on waiting for its audit record (the statement timeout plus half a
   * second): past it, 503, whatever PostgreSQL is doing.
   */
  readonly timeoutMs: number;
  /** The filter may judge by declared categories (no record schema): the caller's word. FILTER_ALLOW_DECLARED. */
  readonly filterAllowDeclared?: boolean;
}

/** Who asked, for the audit record. */
export interface Caller {
  readonly principal: Principal;
  readonly requestId: string;
  /**
   * The request id when optgate issued it (a random UUID for this request alone): a single decision takes it as its
   * decision id, and its audit header stores the one id once.
   */
  readonly issuedRequestId?: string;
}

/** The subject the engine judges: the account's status and its consents for one purpose. */
function subjectFor(state: AccountState | undefined, purpose: string): Subject {
  if (!state?.status) return { account: null, consents: new Map() };
  const consents = new Map<string, ConsentSnapshot>();
  for (const c of state.consents) if (c.purpose === purpose) consents.set(c.category, c);
  return { account: { status: state.status }, consents };
}

/**
 * Loads what the engine needs, asks it, and counts the answer. Any failure propagates: the caller answers 503, never an
 * allow.
 */
export class DecisionService {
  constructor(private readonly deps: DecisionDeps) {}

  /** The recipient registry, each with the purposes (and exceptions) that may name it. */
  recipients() {
    const { catalog } = this.deps;
    const namers = [...catalog.purposes.values(), ...catalog.exceptions.values()];
    return [...catalog.recipients.values()].map((r) => ({
      ...r,
      purposes: namers.filter((p) => p.recipientKinds?.includes(r.kind)).map((p) => p.id),
    }));
  }

  async decide(caller: Caller, request: DecisionRequest): Promise<Decision> {
    const started = process.hrtime.bigint();
    const categories = this.checkRequest(caller.principal, request);
    const states = await this.bounded(this.deps.subjects.getMany([request.accountId]));
    const evaluatedAt = this.deps.clock();
    const subject = subjectFor(states.get(request.accountId), request.purpose);
    const verdict = evaluate({ ...request, categories }, subject, this.deps.catalog, evaluatedAt);
    const decisionId = caller.issuedRequestId ?? randomUUID();
    const header = decisionHeader(caller, 'single', decisionId, request, categories, evaluatedAt);
    await this.record(header, [accountVerdict(request.accountId, verdict)]);
    this.count(request.purpose, [verdict]);
    this.deps.metrics.decisionDuration.observe({ endpoint: 'single' }, seconds(started));
    return {
      decisionId,
      accountId: request.accountId,
      purpose: request.purpose,
      allow: verdict.allow,
      evaluatedAt,
      ...(verdict.allow ? { validUntil: verdict.validUntil } : {}),
      results: verdict.results,
    };
  }

  async decideBatch(caller: Caller, request: BatchRequest): Promise<BatchDecision> {
    const started = process.hrtime.bigint();
    if (request.accountIds.length > MAX_BATCH_ACCOUNTS) {
      throw new AppError('payload-too-large', `At most ${MAX_BATCH_ACCOUNTS} accounts per batch.`);
    }
    const categories = this.checkRequest(caller.principal, request);
    const { decisionId, evaluatedAt, verdicts } = await this.judgeMany(
      caller,
      'batch',
      request,
      categories,
      request.accountIds,
    );
    const results = verdicts.map((verdict, i) => {
      const accountId = request.accountIds[i]!;
      return verdict.allow
        ? { accountId, allow: true, validUntil: verdict.validUntil }
        : {
            accountId,
            allow: false,
            denied: verdict.results.filter((r) => !r.allow).map((r) => ({ category: r.category, reason: r.reason })),
          };
    });
    this.deps.metrics.decisionDuration.observe({ endpoint: 'batch' }, seconds(started));
    return { decisionId, purpose: request.purpose, evaluatedAt, results };
  }

  /**
   * For the streaming filter: checks the request once and says how records are judged (the plan), then judges
   * chunks of accounts as they arrive. Every chunk is audited before its verdicts are returned.
   */
  filterJudge(caller: Caller, request: FilterRequest): { plan: FilterPlan; judge: FilterJudge } {
    const { plan, categories, problems } = this.filterPlan(caller.principal, request);
    const checked = this.checkRequest(caller.principal, { ...request, categories }, problems);
    const judge: FilterJudge = async (accountIds, passedOf) =>
      (await this.judgeMany(caller, 'filter', request, checked, accountIds, passedOf)).verdicts;
    return { plan, judge };
  }

  /**
   * A pipeline bound to a schema (config/schemas.json, `pipelines`) is always judged by it; another caller by the
   * schema it names, or, naming none and only where FILTER_ALLOW_DECLARED is on, at the account level over the
   * categories it declares. A schema says which categories are judged and where the account id is: declaring them as
   * well is refused rather than reconciled.
   */
  private filterPlan(principal: Principal, request: FilterRequest) {
    const { catalog } = this.deps;
    const problems: FieldProblem[] = [];
    const bound = catalog.pipelineSchemas.get(principal.clientId);
    const name = request.schema ?? bound;
    const schema = name === undefined ? undefined : catalog.schemas.get(name);
    if (name !== undefined && !schema) problems.push({ path: 'schema', message: 'unknown schema' });
    else if (bound !== undefined && name !== bound) {
      problems.push({ path: 'schema', message: `this client's records are judged by schema ${bound}` });
    }
    if (name !== undefined) {
      if (request.categories) {
        problems.push({ path: 'categories', message: 'not with a schema: its fields say which categories are judged' });
      }
      if (request.accountField) {
        problems.push({ path: 'accountField', message: 'not with a schema: the schema names the account field' });
      }
    } else if (!this.deps.filterAllowDeclared) {
      // Declared categories are the caller's word for what its records hold: judged on the data, or not at all.
      problems.push({
        path: 'schema',
        message: 'name a record schema (config/schemas.json): records are judged by the fields they hold',
      });
    } else {
      if (!request.categories) problems.push({ path: 'categories', message: 'required without a schema' });
      if (request.mode) {
        problems.push({
          path: 'mode',
          message: 'only with a schema: without one, a record passes whole or not at all',
        });
      }
    }
    const plan: FilterPlan = {
      accountField: schema?.accountField ?? request.accountField ?? 'accountId',
      ...(schema ? { schema } : {}),
      mode: request.mode ?? 'redact',
    };
    return { plan, categories: schema?.categories ?? request.categories ?? [], problems };
  }

  /**
   * Judges many accounts at once, within the batch concurrency limit; one audit record per account judged, committed
   * first.
   */
  private judgeMany(
    caller: Caller,
    endpoint: 'batch' | 'filter',
    request: Pick<DecisionRequest, 'purpose' | 'recipient' | 'reference'>,
    categories: string[],
    accountIds: readonly string[],
    passedOf?: (verdict: Verdict, index: number) => readonly string[],
  ) {
    return this.deps.batches.run(async () => {
      const states = await this.bounded(this.deps.subjects.getMany(accountIds));
      const evaluatedAt = this.deps.clock();
      const decisionId = randomUUID();
      const input = {
        purpose: request.purpose,
        categories,
        recipient: request.recipient,
        reference: request.reference,
      };
      const verdicts = accountIds.map((accountId) =>
        evaluate(input, subjectFor(states.get(accountId), request.purpose), this.deps.catalog, evaluatedAt),
      );
      const header = decisionHeader(caller, endpoint, decisionId, request, categories, evaluatedAt);
      // The filter's records say which categories each record passed on: decided now, before they are audited.
      const passed = passedOf ? verdicts.map(passedOf) : undefined;
      await this.record(
        header,
        verdicts.map((verdict, i) => accountVerdict(accountIds[i]!, verdict, passed?.[i])),
      );
      this.count(request.purpose, verdicts);
      return { decisionId, evaluatedAt, verdicts };
    });
  }

  /** Durable before the answer, or 503: the audit write is bounded like the read. */
  private record(header: DecisionHeader, verdicts: readonly AccountVerdict[]): Promise<void> {
    return this.deps.audit ? this.bounded(this.deps.audit.recordDecision(header, verdicts)) : Promise.resolve();
  }

  private bounded<T>(work: Promise<T>): Promise<T> {
    return withTimeout(work, this.deps.timeoutMs, () => UNAVAILABLE());
  }

  /**
   * Unknown purpose or category is the caller's error (422); a purpose outside the token's entitlement is 403. Returns
   * the categories without repeats.
   */
  private checkRequest(
    principal: Principal,
    request: Omit<DecisionRequest, 'accountId'>,
    found: readonly FieldProblem[] = [],
  ): string[] {
    const { catalog } = this.deps;
    const { purpose, categories, recipient } = request;
    const problems: FieldProblem[] = [...found];
    if (!catalog.purposes.has(purpose) && !catalog.exceptions.has(purpose))
      problems.push({ path: 'purpose', message: 'unknown purpose' });
    categories.forEach((c, i) => {
      if (!catalog.categories.has(c)) problems.push({ path: `categories.${i}`, message: 'unknown category' });
    });
    const kinds = recipientKindsOf(catalog, purpose);
    const known = recipient === undefined ? undefined : catalog.recipients.get(recipient);
    if (recipient === undefined && kinds) {
      problems.push({ path: 'recipient', message: `this purpose must name its recipient (GET /v1/recipients)` });
    } else if (recipient !== undefined && !known) {
      problems.push({ path: 'recipient', message: 'not in the recipient registry (GET /v1/recipients)' });
    } else if (known && kinds && !kinds.includes(known.kind)) {
      problems.push({ path: 'recipient', message: `must be a recipient of kind ${kinds.join(' or ')}` });
    }
    if (problems.length) throw validationError(problems);
    assertPurposeAllowed(principal, purpose);
    return [...new Set(categories)];
  }

  /** Each verdict counted by its outcome and deciding reason (a HotCounter: a map update, not prom-client's). */
  private count(purpose: string, verdicts: readonly Verdict[]): void {
    for (const v of verdicts) this.deps.metrics.decisions.inc({ purpose, ...decisiveOf(v) });
  }
}

/** The answer and the reason that decided it, as the decisions counter labels them. */
function decisiveOf(v: Verdict): { outcome: string; reason: string } {
  const decisive = v.results.find((r) => r.allow === v.allow) ?? v.results[0];
  return { outcome: v.allow ? 'allow' : 'deny', reason: decisive?.reason ?? 'none' };
}

/** What every account judged by one call shares, for its audit records. */
function decisionHeader(
  caller: Caller,
  endpoint: DecisionEndpoint,
  decisionId: string,
  request: { purpose: string; recipient?: string; reference?: string },
  categories: readonly string[],
  evaluatedAt: Date,
): DecisionHeader {
  const { purpose, recipient, reference } = request;
  const { clientId } = caller.principal;
  return {
    decisionId,
    endpoint,
    clientId,
    requestId: caller.requestId,
    purpose,
    categories,
    recipient,
    reference,
    evaluatedAt,
  };
}

const accountVerdict = (accountId: string, v: Verdict, passed?: readonly string[]): AccountVerdict => ({
  accountId,
  ...(v.allow ? { allow: true, validUntil: v.validUntil } : { allow: false }),
  results: v.results,
  ...(passed ? { passed } : {}),
});

const UNAVAILABLE = () =>
  new AppError('unavailable', 'The decision could not be made in time. Try again.', undefined, { 'retry-after': '1' });

const seconds = (since: bigint) => Number(process.hrtime.bigint() - since) / 1e9;
