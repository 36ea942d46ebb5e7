import { Router } from 'express';
import type { ConsoleDeps, ConsoleKit } from './console.router';

/** The console's pages for the account timeline (/console/accounts/:id). */
export function timelinePages(_d: ConsoleDeps, _kit: ConsoleKit): Router {
  const router = Router();
  return router;
}
