import { Router } from 'express';
import type { ConsoleDeps, ConsoleKit } from './console.router';

/** The console's pages for exports started from the console (/console/exports…). */
export function exportPages(_d: ConsoleDeps, _kit: ConsoleKit): Router {
  const router = Router();
  return router;
}
