import { accountRoutes } from './accounts';
import { auditRoutes } from './audit';
import { complianceRoutes } from './compliance';
import { consentRoutes } from './consent';
import { noticeRoutes } from './notices';
import { opsRoutes } from './ops';
import type { RouteSpec } from './platform/http/route';
import { decisionRoutes } from './policy';
import { webhookRoutes } from './webhooks';

/**
 * The route table: every API operation, each described once beside its component's schemas and
 * mounted by its component's router. /openapi.json is generated from this list, and the tests
 * check that every entry answers.
 */
export const API_ROUTES: readonly RouteSpec[] = [
  ...Object.values(accountRoutes),
  ...Object.values(consentRoutes),
  ...Object.values(noticeRoutes),
  ...Object.values(decisionRoutes),
  ...Object.values(auditRoutes),
  ...Object.values(complianceRoutes),
  ...Object.values(webhookRoutes),
  ...Object.values(opsRoutes),
] as RouteSpec[];
