import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseCookies } from 'cookie';
import express, {
  type ErrorRequestHandler,
  type NextFunction,
  type Request,
  type RequestHandler,
  type Response,
  Router,
} from 'express';
import { z } from 'zod';
import { RECEIPT_TYP } from '../audit';
import type { Provenance } from '../consent';
import type { Brand } from '../platform/config/brand';
import { type Catalog, currentNotice } from '../platform/config/catalog';
import type { PipelineNames } from '../platform/config/pipelines';
import { projectRoot } from '../platform/config/project-root';
import { AppError } from '../platform/errors';
import { requestIdOf } from '../platform/http/middleware';
import { fromParserError } from '../platform/http/problem';
import { parse } from '../platform/http/validate';
import type { Views } from '../platform/http/views';
import type { Logger } from '../platform/logger';
import { decodeCursor } from '../platform/pagination';
import { sameToken } from '../platform/sessions';
import { activityDays } from './activity';
import { KEPT_COOKIE, KEPT_MS, keptSelections, selectionsOf } from './kept-selections';
import { noticePrintPage } from './notice-print';
import { type ChoicesView, NoticeChangedError, type PortalService, withSelections } from './portal.service';
import type { PortalSession, PortalSessions } from './session';
import { SignInError, type SignInService } from './sign-in.service';

const COOKIE = 'optgate_session';
const activityQuery = z.object({ outcome: z.enum(['allowed', 'refused']).optional(), before: z.string().optional() });

export interface PortalRouterDeps {
  readonly catalog: Catalog;
  readonly brand: Brand;
  /** What subscribers call the ISP's systems, by client id (config/pipelines.json). */
  readonly pipelines: PipelineNames;
  readonly portal: PortalService;
  readonly signIn: SignInService;
  readonly sessions: PortalSessions;
  readonly views: Views;
  readonly clock: () => Date;
  readonly logger: Logger;
  readonly cookieSecure: boolean;
}

const sessionOf = (res: Response) => res.locals.session as PortalSession;

/** The message a page shows for a problem, by its status (the status itself comes from the one error table). */
const MESSAGES: Record<number, string> = {
  400: 'errors.invalid',
  401: 'signIn.sessionEnded',
  403: 'errors.forbidden',
  404: 'errors.notFound',
  409: 'errors.accountClosed',
  413: 'errors.invalid',
  415: 'errors.invalid',
  422: 'errors.invalid',
  429: 'signIn.tooMany',
};

/** The subscriber portal: public notice pages, sign-in, choices, history and receipts, activity. */
export function portalRouter(d: PortalRouterDeps): Router {
  const { catalog, portal, sessions, views, clock } = d;
  const router = Router();
  const form = express.urlencoded({ extended: false, limit: '32kb', parameterLimit: 500 });
  const provenance = (req: Request, res: Response): Provenance => ({
    clientId: 'portal',
    requestId: requestIdOf(res),
    ip: req.ip,
    userAgent: req.get('user-agent'),
    // The receipt says which language the subscriber chose in.
    language: res.locals.lang as string,
  });
  const cookieOptions = { httpOnly: true, sameSite: 'lax', secure: d.cookieSecure, path: '/' } as const;
  const setCookie = (res: Response, value: string) => res.cookie(COOKIE, value, cookieOptions);

  router.use('/static', express.static(path.join(projectRoot(), 'src/portal/static'), { maxAge: '1h', index: false }));
  // The ISP's colours, as a stylesheet of their own (the CSP allows no inline style), and its logo.
  const { accent, accentText } = d.brand.colours;
  const brandCss = `:root {\n  --accent: ${accent};\n  --accent-ink: ${accentText};\n}\n`;
  router.get('/brand.css', (_req, res) => {
    res.type('text/css').setHeader('cache-control', 'public, max-age=3600');
    res.send(brandCss);
  });
  const { logo } = d.brand;
  if (logo) {
    const bytes = readFileSync(logo.file);
    router.get('/brand/logo', (_req, res) => {
      res.type(logo.type).setHeader('cache-control', 'public, max-age=3600');
      res.send(bytes);
    });
  }

  // Language and the session (if any), for every portal page.
  const context: RequestHandler = async (req, res, next) => {
    res.locals.lang = views.languageOf(req);
    res.setHeader('cache-control', 'no-store');
    const id = parseCookies(req.headers.cookie ?? '')[COOKIE];
    res.locals.session = id ? await sessions.get(id) : undefined;
    next();
  };

  /**
   * A page without a session sends the subscriber to sign in again. A choices form whose session ended keeps its
   * selections (in a short-lived cookie, choices only), so that they are shown again to confirm after signing in.
   */
  const requireSession: RequestHandler = (req, res, next) => {
    if (res.locals.session) return next();
    if (req.method === 'GET') return res.redirect(303, '/?ended=1');
    const kept = req.path === '/choices' ? keptSelections(req) : undefined;
    if (kept) res.cookie(KEPT_COOKIE, kept, { ...cookieOptions, maxAge: KEPT_MS });
    const message = kept ? 'signIn.sessionEndedKept' : 'signIn.sessionEnded';
    views.render(res, 'message.njk', { title: 'signIn.title', message, home: false, signInLink: true }, 401);
  };

  /**
   * The Global Privacy Control signal, applied once per session before anything is shown or
   * saved (and, for a form, only once the form is known to be genuine).
   */
  const gpc: RequestHandler = async (req, res, next) => {
    const session = sessionOf(res);
    if (req.get('sec-gpc') === '1') {
      if (!session.gpcApplied) {
        const events = await portal.applyGpc(session.accountId, provenance(req, res));
        session.gpcApplied = true;
        await sessions.save(session);
        res.locals.gpc = { applied: events.length };
      } else res.locals.gpc = { applied: 0 };
    }
    next();
  };

  /**
   * A form whose token does not match is refused (403) and records nothing. The choices form is shown again with the
   * selections it carried, to confirm with a fresh token: an expired page costs the subscriber nothing.
   */
  const csrf: RequestHandler = async (req, res, next) => {
    if (sameToken(req.body?._csrf, sessionOf(res).csrf)) return next();
    if (req.method !== 'POST' || req.path !== '/choices') throw new AppError('forbidden', 'csrf');
    const view = withSelections(await portal.choices(sessionOf(res).accountId), req.body ?? {});
    views.render(res, 'choices.njk', choicesPage(view, { confirmAgain: true }), 403);
  };
  const choicesPage = (
    view: ChoicesView,
    o: { noticeChanged?: boolean; confirmAgain?: boolean; sessionEnded?: boolean } = {},
  ) => ({
    view,
    exceptions: [...catalog.exceptions.keys()],
    noticeChanged: o.noticeChanged ?? false,
    confirmAgain: o.confirmAgain ?? false,
    sessionEnded: o.sessionEnded ?? false,
    active: 'choices',
  });

  const signedIn = [requireSession, gpc] as const;
  const signedInForm = [form, requireSession, csrf, gpc] as const;

  const pages = Router();

  pages.get('/', context, (req, res) => {
    views.render(res, 'landing.njk', { ended: req.query.ended === '1', signedOut: req.query.signedOut === '1' });
  });

  pages.get('/notice', context, (_req, res) => {
    const now = clock();
    const notice = currentNotice(catalog, now);
    if (!notice) throw new AppError('not-found', 'no notice');
    views.render(res, 'notice.njk', { notice, notices: catalog.notices, now, current: notice });
  });

  pages.get('/notice/print', context, noticePrintPage({ catalog, views, clock }));

  pages.get('/notice/:version', context, (req, res) => {
    const notice = catalog.noticesByVersion.get(String(req.params.version));
    if (!notice) throw new AppError('not-found', 'no such notice');
    const now = clock();
    views.render(res, 'notice.njk', { notice, notices: catalog.notices, now, current: currentNotice(catalog, now) });
  });

  pages.get('/login', context, async (req, res) => {
    const token = typeof req.query.token === 'string' ? req.query.token : undefined;
    const session = await d.signIn.signIn(token, req.ip ?? 'unknown', res.locals.session);
    setCookie(res, session.id);
    res.redirect(303, '/choices');
  });

  pages.post('/logout', context, ...signedInForm, async (_req, res) => {
    await sessions.destroy(sessionOf(res).id);
    res.clearCookie(COOKIE, { path: '/' });
    res.clearCookie(KEPT_COOKIE, { path: '/' });
    res.redirect(303, '/?signedOut=1');
  });

  pages.get('/choices', context, ...signedIn, async (req, res) => {
    const view = await portal.choices(sessionOf(res).accountId);
    // Selections a form carried when its session ended: shown again, to confirm (nothing was saved).
    const kept = selectionsOf(parseCookies(req.headers.cookie ?? '')[KEPT_COOKIE]);
    if (kept) {
      res.clearCookie(KEPT_COOKIE, { path: '/' });
      return views.render(res, 'choices.njk', choicesPage(withSelections(view, kept), { sessionEnded: true }));
    }
    views.render(res, 'choices.njk', choicesPage(view, { noticeChanged: req.query.noticeChanged === '1' }));
  });

  pages.post('/choices', context, ...signedInForm, async (req, res) => {
    const session = sessionOf(res);
    try {
      const events = await portal.save(session.accountId, req.body as Record<string, unknown>, provenance(req, res), {
        underGpc: req.get('sec-gpc') === '1',
      });
      session.lastReceipt = events[0]?.receiptId;
      await sessions.save(session);
      res.redirect(303, '/choices/saved');
    } catch (err) {
      if (!(err instanceof NoticeChangedError)) throw err;
      res.redirect(303, '/choices?noticeChanged=1');
    }
  });

  pages.post('/choices/revoke-all', context, ...signedInForm, async (req, res) => {
    const session = sessionOf(res);
    const events = await portal.revokeAll(session.accountId, provenance(req, res));
    session.lastReceipt = events[0]?.receiptId;
    await sessions.save(session);
    res.redirect(303, '/choices/saved');
  });

  pages.get('/choices/saved', context, ...signedIn, async (_req, res) => {
    const session = sessionOf(res);
    const change = session.lastReceipt ? await portal.change(session.accountId, session.lastReceipt) : undefined;
    views.render(res, 'saved.njk', { events: change?.events ?? [], receiptId: change?.receiptId ?? null });
  });

  pages.get('/history', context, ...signedIn, async (req, res) => {
    const before = typeof req.query.before === 'string' ? req.query.before : undefined;
    const { entries, next } = await portal.history(sessionOf(res).accountId, before);
    views.render(res, 'history.njk', { entries, before, next });
  });

  // A receipt by its id; an event's id of an act goes to the act's receipt (303), the file asked for included.
  const receiptId = (req: Request) => String(req.params.id);
  const moved = (res: Response, to: string, file = '') => res.redirect(303, `/receipts/${to}${file}`);

  pages.get('/receipts/:id', context, ...signedIn, async (req, res) => {
    const page = await portal.receiptPage(sessionOf(res).accountId, receiptId(req));
    if ('moved' in page) return moved(res, page.moved);
    views.render(res, 'receipt.njk', { receipt: page.receipt, r: page.receipt.payload, signed: page.signed });
  });

  // The receipt as it was signed, the same bytes at every download.
  pages.get('/receipts/:id/receipt.jws', context, ...signedIn, async (req, res) => {
    const receipt = await portal.receipt(sessionOf(res).accountId, receiptId(req));
    if ('moved' in receipt) return moved(res, receipt.moved, '/receipt.jws');
    // attachment() sets a type from the file name: the real type goes after it.
    res
      .attachment(`optgate-receipt-${receipt.receiptId}.jws`)
      .type(`application/jose; typ=${RECEIPT_TYP}`)
      .send(receipt.jws);
  });

  // Its payload: the signed bytes, to read.
  pages.get('/receipts/:id/receipt.json', context, ...signedIn, async (req, res) => {
    const receipt = await portal.receipt(sessionOf(res).accountId, receiptId(req));
    if ('moved' in receipt) return moved(res, receipt.moved, '/receipt.json');
    res.attachment(`optgate-receipt-${receipt.receiptId}.json`).type('application/json').send(receipt.payloadJson);
  });

  pages.get('/receipts/:id/proof.json', context, ...signedIn, async (req, res) => {
    const proof = await portal.receiptProofFile(sessionOf(res).accountId, receiptId(req));
    if ('moved' in proof) return moved(res, proof.moved, '/proof.json');
    res
      .attachment(`optgate-receipt-${proof.receiptId}.proof.json`)
      .type('application/json')
      .send(`${JSON.stringify(proof.file, null, 2)}\n`);
  });

  pages.get('/activity', context, ...signedIn, async (req, res) => {
    // A filter or cursor the page never links to is a 422 page; other parameters are ignored.
    const { outcome, before } = parse(activityQuery, req.query);
    const beforeSeq = before === undefined ? undefined : decodeCursor(before, 'before');
    const { accountId } = sessionOf(res);
    const [page, gpcSince, staffViews] = await Promise.all([
      portal.activity(accountId, { beforeSeq, outcome }),
      portal.gpcSince(accountId),
      portal.staffViews(accountId),
    ]);
    views.render(res, 'activity.njk', {
      days: activityDays(page.events, { catalog, pipelines: d.pipelines, recipientName: portal.recipientName }),
      next: page.nextCursor,
      filter: outcome ?? null,
      first: beforeSeq === undefined,
      gpcSince,
      staffViews,
    });
  });

  // Pages answer in HTML, errors included, with the status of the one error table.
  const pageErrors: ErrorRequestHandler = (err, _req, res, _next: NextFunction) => {
    const problem =
      (err instanceof AppError ? err : fromParserError(err)) ?? new AppError('unavailable', 'portal page failed');
    if (problem.status >= 500) {
      d.logger.error(
        { requestId: requestIdOf(res), err: { message: err?.message, name: err?.name } },
        'portal page failed',
      );
    }
    const signIn = err instanceof SignInError;
    const title = signIn ? 'signIn.title' : 'errors.title';
    const message = signIn ? `signIn.${err.problem}` : (MESSAGES[problem.status] ?? 'errors.unavailable');
    res.locals.lang ??= 'en';
    if (problem.headers) res.set(problem.headers);
    // The next step: a new sign-in link where one is needed, the home page otherwise, and the phone always.
    const signInLink = signIn || problem.status === 401;
    views.render(res, 'message.njk', { title, message, home: !signIn, signInLink }, problem.status);
  };

  // Any other page a browser asks for gets the portal's 404 page, in its language and with its session. (The API's
  // paths never reach here: the app answers their 404s as problems.)
  const notFoundPage: RequestHandler = async (req, res, next) => {
    if (req.method !== 'GET' || req.accepts(['json', 'html']) !== 'html') return next();
    await context(req, res, () => undefined);
    next(new AppError('not-found', 'no such page'));
  };

  router.use(pages, notFoundPage);
  router.use(pageErrors);
  return router;
}
