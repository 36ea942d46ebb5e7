import { Router } from 'express';
import type { ConsoleDeps, ConsoleKit } from './console.router';

/** The console's pages for charts (/console/charts). */
export function chartPages(_d: ConsoleDeps, _kit: ConsoleKit): Router {
  const router = Router();
  return router;
}
