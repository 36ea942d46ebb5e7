import express, { type Express } from 'express';
import helmet from 'helmet';
import type { Redis } from 'ioredis';
import { accountRouter } from './accounts/account.router';
import { auditRouter } from './audit/audit.router';
import type { AuditService } from './audit/audit.service';
import type { ExportService } from './audit/export.service';
import { consentRouter } from './consent/consent.router';
import type { ConsentService } from './consent/consent.service';
import { noticeRouter } from './notices/notice.router';
import { opsRouter } from './ops/ops.router';
import type { ServiceKeys } from './platform/auth/keys';
import type { TokenVerifier } from './platform/auth/tokens';
import type { AppConfig } from './platform/config';
import type { Db } from './platform/db/database';
import { accessLog, requestId } from './platform/http/middleware';
import { errorHandler, notFound } from './platform/http/problem';
import type { Logger } from './platform/logger';
import type { Metrics } from './platform/metrics';
import { decisionRouter } from './policy/decision.router';
import type { DecisionService } from './policy/decision.service';
import { type PortalDeps, portalRouter } from './portal/portal.router';

export interface AppDeps {
  readonly config: AppConfig;
  readonly db: Db;
  readonly redis: Redis;
  readonly keys: ServiceKeys;
  readonly verifier: TokenVerifier;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly clock: () => Date;
  readonly consents: ConsentService;
  readonly decisions: DecisionService;
  readonly audit: AuditService;
  readonly exportService: ExportService;
  readonly portal: PortalDeps;
  readonly isShuttingDown: () => boolean;
}

/** The HTTP surface: thin routers over the services, one error handler. */
export function createApp(d: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', d.config.http.trustProxy);
  app.set('etag', false);
  app.use(
    requestId,
    accessLog(d.logger, d.metrics),
    // A strict policy for every response: the portal needs its own stylesheet and forms, nothing else; no script at
    // all.
    helmet({
      contentSecurityPolicy: {
        useDefaults: false,
        directives: {
          defaultSrc: ["'none'"],
          styleSrc: ["'self'"],
          imgSrc: ["'self'"],
          formAction: ["'self'"],
          frameAncestors: ["'none'"],
          baseUri: ["'none'"],
        },
      },
    }),
  );

  app.use(
    opsRouter({
      db: d.db,
      redis: d.redis,
      metrics: d.metrics,
      publicJwks: d.keys.publicJwks,
      isShuttingDown: d.isShuttingDown,
    }),
  );
  app.use(noticeRouter(d.config.catalog, d.clock));
  app.use(accountRouter(d.db, d.verifier, d.clock));
  app.use(consentRouter(d.consents, d.verifier));
  app.use(decisionRouter(d.decisions, d.verifier));
  app.use(auditRouter(d.audit, d.exportService, d.verifier));
  app.use(portalRouter(d.portal));

  app.use(notFound);
  app.use(errorHandler(d.logger));
  return app;
}
