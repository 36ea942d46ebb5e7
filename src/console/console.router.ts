import path from 'node:path';
import { parse as parseCookies } from 'cookie';
import express, {
  type ErrorRequestHandler,
  type NextFunction,
  type RequestHandler,
  type Response,
  Router,
} from 'express';
import { z } from 'zod';
import type { AccountService } from '../accounts';
import type { AuditIntegrity, AuditService, ExportService } from '../audit';
import type { ConsentService } from '../consent';
import type { Catalog } from '../platform/config/catalog';
import type { PipelineNames } from '../platform/config/pipelines';
import { projectRoot } from '../platform/config/project-root';
import { AppError } from '../platform/errors';
import { requestIdOf } from '../platform/http/middleware';
import { fromParserError } from '../platform/http/problem';
import { parse } from '../platform/http/validate';
import type { Views } from '../platform/http/views';
import type { Logger } from '../platform/logger';
import { sameToken } from '../platform/sessions';
import { accountId as accountIdSchema, ticketReference } from '../platform/vocabulary';
import { chartPages } from './charts.pages';
import { exportPages } from './exports.pages';
import { integrityPages } from './integrity.pages';
import { questionPages } from './question.pages';
import type { StaffSession, StaffSessions } from './staff-session';
import { StaffSignInError, type StaffSignInService } from './staff-sign-in.service';
import { timelinePages } from './timeline.pages';

/** The console's cookie: its own name and path, never the portal's. */
export const CONSOLE_COOKIE = 'optgate_console';
/** The portal's session cookie: present without a console session, it is a subscriber at the console's door. */
const PORTAL_COOKIE = 'optgate_session';

export interface ConsoleDeps {
  readonly signIn: StaffSignInService;
  readonly sessions: StaffSessions;
  readonly accounts: AccountService;
  readonly audit: AuditService;
  readonly exports: ExportService;
  /** For the consent receipts the account timeline links to. */
  readonly consents: ConsentService;
  readonly catalog: Catalog;
  /** What the ISP calls its systems, by client id (config/pipelines.json). */
  readonly pipelines: PipelineNames;
  readonly views: Views;
  readonly clock: () => Date;
  readonly logger: Logger;
  readonly cookieSecure: boolean;
  /** The log's signed head and its verifications (the integrity page; "Verify now"). */
  readonly integrity: AuditIntegrity;
  /** What the banner on every page warns of: the log's signed head or its verification late or failed. */
  readonly integrityAlerts: () => Promise<readonly string[]>;
}

/** What every console page module is given besides the dependencies: the gates, the form parser, the audit of views. */
export interface ConsoleKit {
  /** A signed-in staff member (401 page otherwise; 403 for a subscriber session or an API token). */
  readonly signedIn: readonly RequestHandler[];
  /** The same, for a form: the body parsed and its CSRF token checked (403, nothing done, when it does not match). */
  readonly signedInForm: readonly RequestHandler[];
  /** Compliance staff only: support gets 403. */
  readonly complianceOnly: RequestHandler;
  staffOf(res: Response): StaffSession;
  /**
   * Throws 403 unless this staff member may see the account: compliance any, support only the account of the ticket
   * they entered (the page then offers the ticket form). Returns the ticket reference for support.
   */
  requireAccount(res: Response, accountId: string): string | undefined;
  /** Records (before the page is sent) that a console page showed an account's data, or any account's (null). */
  recordView(
    res: Response,
    view: 'timeline' | 'question' | 'export',
    accountId: string | null,
    filters?: Record<string, string>,
  ): Promise<void>;
  render(res: Response, template: string, context?: Record<string, unknown>, status?: number): void;
}

const MESSAGES: Record<number, string> = {
  400: 'The request could not be read.',
  401: 'You are not signed in, or your session has ended. Sign in again with a link from your identity provider.',
  403: 'Your role does not allow this page.',
  404: 'There is no such page.',
  413: 'The request is too large.',
  422: 'Something in the request is not valid.',
  429: 'Too many sign-in attempts from this address. Wait a minute and try again.',
};
const SIGN_IN_MESSAGES: Record<StaffSignInError['problem'], string> = {
  missing: 'This sign-in link is incomplete. Ask your identity provider for a new one.',
  invalid: 'This sign-in link is not valid. Ask your identity provider for a new one.',
  expired: 'This sign-in link has expired. Ask your identity provider for a new one.',
  used: 'This sign-in link has already been used. Ask your identity provider for a new one.',
  notStaff: 'This link does not sign in a member of staff: the console is for compliance and support staff only.',
  tooMany: MESSAGES[429]!,
};

const searchQuery = z.object({ account: accountIdSchema });
const ticketForm = z.object({ account: accountIdSchema, reference: ticketReference });

/** The compliance console, under /console: server-rendered, no script, strict CSP (set by app.ts). */
export function consoleRouter(d: ConsoleDeps): Router {
  const { sessions, views } = d;
  const router = Router();
  const form = express.urlencoded({ extended: false, limit: '16kb', parameterLimit: 50 });
  const cookieOptions = { httpOnly: true, sameSite: 'strict', secure: d.cookieSecure, path: '/console' } as const;
  const staffOf = (res: Response) => res.locals.session as StaffSession;

  router.use('/static', express.static(path.join(projectRoot(), 'src/console/static'), { maxAge: '1h', index: false }));

  // Every console page: English, never cached, the staff session if there is one.
  router.use(async (req, res, next) => {
    res.locals.lang = 'en';
    res.setHeader('cache-control', 'no-store');
    res.locals.session = await sessions.get(parseCookies(req.headers.cookie ?? '')[CONSOLE_COOKIE]);
    if (res.locals.session) res.locals.alerts = await d.integrityAlerts();
    next();
  });

  const requireStaff: RequestHandler = (req, res, next) => {
    if (res.locals.session) return next();
    // A subscriber's session or an API caller's token is no way in, whatever it is worth elsewhere.
    const cookies = parseCookies(req.headers.cookie ?? '');
    if (req.headers.authorization || cookies[PORTAL_COOKIE]) {
      throw new AppError('forbidden', 'the console is for staff: a subscriber session or an API token never opens it');
    }
    throw new AppError('unauthenticated', 'no console session');
  };
  const csrf: RequestHandler = (req, res, next) => {
    if (sameToken(req.body?._csrf, staffOf(res).csrf)) return next();
    throw new AppError('forbidden', 'csrf');
  };
  const complianceOnly: RequestHandler = (_req, res, next) => {
    if (staffOf(res).role === 'compliance') return next();
    throw new AppError('forbidden', 'compliance staff only');
  };

  const render = (res: Response, template: string, context: Record<string, unknown> = {}, status = 200) =>
    views.render(
      res,
      template,
      { staff: res.locals.session ?? null, alerts: res.locals.alerts ?? [], ...context },
      status,
    );

  const kit: ConsoleKit = {
    signedIn: [requireStaff],
    signedInForm: [form, requireStaff, csrf],
    complianceOnly,
    staffOf,
    requireAccount(res, accountId) {
      const staff = staffOf(res);
      if (staff.role === 'compliance') return undefined;
      if (staff.ticket?.accountId === accountId) return staff.ticket.reference;
      throw new TicketRequired(accountId);
    },
    async recordView(res, view, accountId, filters) {
      const staff = staffOf(res);
      const reference = staff.role === 'support' ? staff.ticket?.reference : undefined;
      await d.audit.recordStaffAction(
        {
          action: 'console_viewed',
          actor: staff.staffId,
          role: staff.role,
          view,
          ...(reference ? { reference } : {}),
          ...(filters && Object.keys(filters).length ? { filters } : {}),
        },
        accountId,
      );
    },
    render,
  };

  const pages = Router();

  pages.get('/login', async (req, res) => {
    const token = typeof req.query.token === 'string' ? req.query.token : undefined;
    const session = await d.signIn.signIn(token, req.ip ?? 'unknown', res.locals.session);
    res.cookie(CONSOLE_COOKIE, session.id, cookieOptions);
    res.redirect(303, '/console');
  });

  pages.post('/logout', ...kit.signedInForm, async (_req, res) => {
    await sessions.destroy(staffOf(res).id);
    res.clearCookie(CONSOLE_COOKIE, { path: '/console' });
    render(res, 'message.njk', { title: 'Signed out', message: 'You are signed out of the console.', staff: null });
  });

  // Home: integrity at a glance, and the way to an account (a search for compliance, a ticket for support).
  pages.get('/', ...kit.signedIn, (_req, res) => {
    render(res, 'home.njk', { active: 'home', notFound: null });
  });

  pages.get('/accounts', ...kit.signedIn, async (req, res) => {
    const staff = staffOf(res);
    if (staff.role !== 'compliance') return res.redirect(303, '/console');
    const { account } = parse(searchQuery, req.query);
    if (!(await exists(d.accounts, account))) {
      return render(res, 'home.njk', { active: 'home', notFound: account }, 404);
    }
    res.redirect(303, `/console/accounts/${encodeURIComponent(account)}`);
  });

  // Support: one account at a time, after its ticket reference. A new ticket replaces the last one.
  pages.post('/ticket', ...kit.signedInForm, async (req, res) => {
    const staff = staffOf(res);
    const { account, reference } = parse(ticketForm, req.body);
    if (!(await exists(d.accounts, account))) {
      return render(res, 'home.njk', { active: 'home', notFound: account }, 404);
    }
    staff.ticket = { accountId: account, reference };
    await sessions.save(staff);
    res.redirect(303, `/console/accounts/${encodeURIComponent(account)}`);
  });

  pages.use(timelinePages(d, kit));
  pages.use(questionPages(d, kit));
  pages.use(exportPages(d, kit));
  pages.use(integrityPages(d, kit));
  pages.use(chartPages(d, kit));

  // Errors are pages too, with the status of the one error table.
  const pageErrors: ErrorRequestHandler = (err, _req, res, _next: NextFunction) => {
    if (err instanceof TicketRequired) {
      return render(res, 'ticket.njk', { accountId: err.accountId, active: 'home' }, 403);
    }
    const problem =
      (err instanceof AppError ? err : fromParserError(err)) ?? new AppError('unavailable', 'console page failed');
    if (problem.status >= 500) {
      d.logger.error(
        { requestId: requestIdOf(res), err: { message: err?.message, name: err?.name } },
        'console page failed',
      );
    }
    if (problem.headers) res.set(problem.headers);
    const message =
      err instanceof StaffSignInError
        ? SIGN_IN_MESSAGES[err.problem]
        : (MESSAGES[problem.status] ?? 'The console cannot answer just now. Try again in a moment.');
    const title = problem.status === 401 || err instanceof StaffSignInError ? 'Sign in to the console' : problem.title;
    render(res, 'message.njk', { title, message, signIn: problem.status === 401 }, problem.status);
  };
  const notFoundPage: RequestHandler = (_req, _res, next) => next(new AppError('not-found', 'no such console page'));

  router.use(pages, notFoundPage);
  router.use(pageErrors);
  return router;
}

/** Support asked for an account without having entered its ticket: a 403 that shows the ticket form. */
class TicketRequired extends AppError {
  constructor(readonly accountId: string) {
    super('forbidden', 'a ticket reference is needed first');
  }
}

async function exists(accounts: AccountService, accountId: string): Promise<boolean> {
  try {
    await accounts.require(accountId);
    return true;
  } catch (err) {
    if (err instanceof AppError && err.type === 'not-found') return false;
    throw err;
  }
}
