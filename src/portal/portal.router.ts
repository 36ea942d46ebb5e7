import { createHash } from 'node:crypto';
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
import type { Redis } from 'ioredis';
import { type JWTPayload, errors as joseErrors, jwtVerify } from 'jose';
import { ACCOUNT_ID } from '../accounts/account.service';
import { decodeCursor } from '../audit/audit.service';
import type { Provenance } from '../consent/consent.service';
import type { ServiceKeys } from '../platform/auth/keys';
import type { AppConfig } from '../platform/config';
import { currentNotice } from '../platform/config/catalog';
import { projectRoot } from '../platform/config/project-root';
import { AppError } from '../platform/errors';
import { requestIdOf } from '../platform/http/middleware';
import { fromParserError } from '../platform/http/problem';
import type { Logger } from '../platform/logger';
import { NoticeChangedError, type PortalService, RECEIPT_TYP } from './portal.service';
import type { Views } from './render';
import { firstUse, type PortalSession, type SessionStore, sameToken, underLimit } from './session';

const COOKIE = 'optgate_session';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface PortalDeps {
  readonly config: AppConfig;
  readonly portal: PortalService;
  readonly sessions: SessionStore;
  readonly views: Views;
  readonly redis: Redis;
  readonly keys: ServiceKeys;
  readonly logger: Logger;
}

type SignInProblem = 'invalid' | 'expired' | 'used' | 'unknownAccount' | 'missing' | 'tooMany';
class SignInError extends Error {
  constructor(readonly problem: SignInProblem) {
    super(problem);
  }
}

const sessionOf = (res: Response) => res.locals.session as PortalSession;
const hashed = (value: string) => createHash('sha256').update(value).digest('hex').slice(0, 32);

/** The subscriber portal: public notice pages, sign-in, choices, history and receipts, activity. */
export function portalRouter(d: PortalDeps): Router {
  const { config, portal, sessions, views, redis } = d;
  const router = Router();
  const catalog = config.catalog;
  const form = express.urlencoded({ extended: false, limit: '32kb', parameterLimit: 500 });
  const provenance = (req: Request, res: Response): Provenance => ({
    clientId: 'portal',
    requestId: requestIdOf(res),
    ip: req.ip,
    userAgent: req.get('user-agent'),
  });
  const setCookie = (res: Response, value: string) =>
    res.cookie(COOKIE, value, { httpOnly: true, sameSite: 'lax', secure: config.portal.cookieSecure, path: '/' });

  router.use('/static', express.static(path.join(projectRoot(), 'src/portal/static'), { maxAge: '1h', index: false }));

  // Language and the session (if any), for every portal page.
  const context: RequestHandler = async (req, res, next) => {
    res.locals.lang = views.languageOf(req);
    res.setHeader('cache-control', 'no-store');
    const id = parseCookies(req.headers.cookie ?? '')[COOKIE];
    res.locals.session = id ? await sessions.get(id) : undefined;
    next();
  };

  const requireSession: RequestHandler = (req, res, next) => {
    if (res.locals.session) return next();
    if (req.method === 'GET') return res.redirect(303, '/?ended=1');
    views.render(res, 'message.njk', { title: 'signIn.title', message: 'signIn.sessionEnded' }, 401);
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

  const csrf: RequestHandler = (req, res, next) => {
    if (!sameToken(req.body?._csrf, sessionOf(res).csrf)) throw new AppError('forbidden', 'csrf');
    next();
  };

  const signedIn = [requireSession, gpc] as const;
  const signedInForm = [form, requireSession, csrf, gpc] as const;

  const pages = Router();

  pages.get('/', context, (req, res) => {
    views.render(res, 'landing.njk', { ended: req.query.ended === '1', signedOut: req.query.signedOut === '1' });
  });

  pages.get('/notice', context, (_req, res) => {
    const notice = currentNotice(catalog, new Date());
    if (!notice) throw new AppError('not-found', 'no notice');
    views.render(res, 'notice.njk', { notice, notices: catalog.notices, now: new Date(), current: notice });
  });

  pages.get('/notice/:version', context, (req, res) => {
    const notice = catalog.noticesByVersion.get(String(req.params.version));
    if (!notice) throw new AppError('not-found', 'no such notice');
    views.render(res, 'notice.njk', {
      notice,
      notices: catalog.notices,
      now: new Date(),
      current: currentNotice(catalog, new Date()),
    });
  });

  pages.get('/login', context, async (req, res) => {
    try {
      const token = typeof req.query.token === 'string' ? req.query.token : '';
      if (!token) throw new SignInError('missing');
      const limitKey = `${config.redis.prefix}:portal:signin:${hashed(req.ip ?? 'unknown')}`;
      if (!(await underLimit(redis, limitKey, config.portal.signInPerMinute, 60_000))) throw new SignInError('tooMany');
      const claims = await verifySignInToken(token);
      const accountId = claims.sub!;
      if (!(await firstUse(redis, `${config.redis.prefix}:portal:jti:${hashed(claims.jti!)}`, claims.exp! * 1000)))
        throw new SignInError('used');
      try {
        await portal.choices(accountId);
      } catch (err) {
        if (err instanceof AppError && err.type === 'not-found') throw new SignInError('unknownAccount');
        throw err;
      }
      // A new session id at every sign-in: a session id planted before sign-in is worthless.
      if (res.locals.session) await sessions.destroy((res.locals.session as PortalSession).id);
      const session = await sessions.create(accountId);
      setCookie(res, session.id);
      res.redirect(303, '/choices');
    } catch (err) {
      if (!(err instanceof SignInError)) throw err;
      const status = err.problem === 'tooMany' ? 429 : err.problem === 'missing' ? 400 : 401;
      views.render(res, 'message.njk', { title: 'signIn.title', message: `signIn.${err.problem}` }, status);
    }
  });

  async function verifySignInToken(token: string): Promise<JWTPayload> {
    try {
      const { payload } = await jwtVerify(token, d.keys.verifyToken, {
        issuer: config.auth.issuer,
        audience: config.portal.tokenAudience,
        algorithms: ['ES256', 'ES384', 'RS256', 'PS256', 'EdDSA'],
        requiredClaims: ['exp', 'iat', 'sub', 'jti'],
        maxTokenAge: '15m',
      });
      if (!ACCOUNT_ID.test(payload.sub!)) throw new SignInError('invalid');
      return payload;
    } catch (err) {
      if (err instanceof SignInError) throw err;
      throw new SignInError(err instanceof joseErrors.JWTExpired ? 'expired' : 'invalid');
    }
  }

  pages.post('/logout', context, ...signedInForm, async (_req, res) => {
    await sessions.destroy(sessionOf(res).id);
    res.clearCookie(COOKIE, { path: '/' });
    res.redirect(303, '/?signedOut=1');
  });

  pages.get('/choices', context, ...signedIn, async (req, res) => {
    const view = await portal.choices(sessionOf(res).accountId);
    views.render(res, 'choices.njk', {
      view,
      exceptions: [...catalog.exceptions.keys()],
      noticeChanged: req.query.noticeChanged === '1',
      active: 'choices',
    });
  });

  pages.post('/choices', context, ...signedInForm, async (req, res) => {
    const session = sessionOf(res);
    try {
      const events = await portal.save(session.accountId, req.body as Record<string, unknown>, provenance(req, res));
      session.lastChange = events.map((e) => e.eventId);
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
    session.lastChange = events.map((e) => e.eventId);
    await sessions.save(session);
    res.redirect(303, '/choices/saved');
  });

  pages.get('/choices/saved', context, ...signedIn, async (_req, res) => {
    const session = sessionOf(res);
    const ids = session.lastChange ?? [];
    const events = (await Promise.all(ids.map((id) => portal.receipt(session.accountId, id)))).map((r) => r.event);
    views.render(res, 'saved.njk', { events });
  });

  pages.get('/history', context, ...signedIn, async (req, res) => {
    const before = typeof req.query.before === 'string' ? req.query.before : undefined;
    const { events, next } = await portal.history(sessionOf(res).accountId, before);
    views.render(res, 'history.njk', { events, before, next });
  });

  pages.get('/receipts/:eventId', context, ...signedIn, async (req, res) => {
    if (!UUID.test(req.params.eventId as string)) throw new AppError('not-found', 'no such receipt');
    const receipt = await portal.receipt(sessionOf(res).accountId, req.params.eventId as string);
    views.render(res, 'receipt.njk', { receipt });
  });

  pages.get('/receipts/:eventId/receipt.jws', context, ...signedIn, async (req, res) => {
    if (!UUID.test(req.params.eventId as string)) throw new AppError('not-found', 'no such receipt');
    const { jws } = await portal.receipt(sessionOf(res).accountId, req.params.eventId as string);
    // attachment() sets a type from the file name: the real type goes after it.
    res.attachment(`optgate-receipt-${req.params.eventId}.jws`).type(`application/jose; typ=${RECEIPT_TYP}`).send(jws);
  });

  pages.get('/activity', context, ...signedIn, async (req, res) => {
    const before = typeof req.query.before === 'string' ? decodeCursor(req.query.before) : undefined;
    const page = await portal.activity(sessionOf(res).accountId, before);
    views.render(res, 'activity.njk', { page, first: before === undefined, purposeIds: [...catalog.purposes.keys()] });
  });

  // Pages answer in HTML, errors included.
  const pageErrors: ErrorRequestHandler = (err, _req, res, _next: NextFunction) => {
    const known = err instanceof AppError ? err : fromParserError(err);
    const type = known?.type ?? 'unavailable';
    const status =
      {
        'not-found': 404,
        forbidden: 403,
        validation: 400,
        'bad-request': 400,
        'payload-too-large': 413,
        'unsupported-media-type': 415,
      }[type as string] ?? 503;
    if (status === 503)
      d.logger.error(
        { requestId: requestIdOf(res), err: { message: err?.message, name: err?.name } },
        'portal page failed',
      );
    const message =
      {
        404: 'errors.notFound',
        403: 'errors.forbidden',
        400: 'errors.invalid',
        413: 'errors.invalid',
        415: 'errors.invalid',
      }[status] ?? 'errors.unavailable';
    res.locals.lang ??= 'en';
    views.render(res, 'message.njk', { title: 'errors.title', message, home: true }, status);
  };

  // Any other path a browser asks for (not the API's) gets the portal's 404 page, in its language and with its session.
  const notFoundPage: RequestHandler = async (req, res, next) => {
    const api = /^\/(v1|\.well-known|healthz|readyz|metrics|openapi\.json)(\/|$)/.test(req.path);
    if (api || req.method !== 'GET' || req.accepts(['json', 'html']) !== 'html') return next();
    await context(req, res, () => undefined);
    next(new AppError('not-found', 'no such page'));
  };

  router.use(pages, notFoundPage);
  router.use(pageErrors);
  return router;
}
