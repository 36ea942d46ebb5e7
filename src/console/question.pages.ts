import { Router } from 'express';
import type { ConsoleDeps, ConsoleKit } from './console.router';

/** The console's pages for the regulator's question (/console/question). */
export function questionPages(_d: ConsoleDeps, _kit: ConsoleKit): Router {
  const router = Router();
  return router;
}
