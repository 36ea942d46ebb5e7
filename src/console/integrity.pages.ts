import { Router } from 'express';
import type { ConsoleDeps, ConsoleKit } from './console.router';

/** The console's pages for integrity at a glance (/console/integrity). */
export function integrityPages(_d: ConsoleDeps, _kit: ConsoleKit): Router {
  const router = Router();
  return router;
}
