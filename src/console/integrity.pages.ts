import { Router } from 'express';
import type { Verification } from '../audit';
import type { ConsoleDeps, ConsoleKit } from './console.router';
import { alertsOf, durationInWords } from './integrity';

/** How many of the latest verification runs the page lists. */
const RECENT_RUNS = 10;

const RESULTS: Record<Verification['result'], string> = {
  intact: 'Intact',
  broken: 'Problem found',
  error: 'Could not finish',
};
const RUNNERS: Record<Verification['ranBy'], string> = {
  job: 'Scheduled job',
  cli: 'Command line',
  console: 'Console',
};

/** The console's pages for integrity at a glance (/console/integrity): compliance staff only. */
export function integrityPages(d: ConsoleDeps, kit: ConsoleKit): Router {
  const router = Router();

  router.get('/integrity', ...kit.signedIn, kit.complianceOnly, async (req, res) => {
    const [s, recent] = await Promise.all([d.integrity.state(), d.integrity.recent(RECENT_RUNS)]);
    const since = (at: Date) => durationInWords(s.now.getTime() - at.getTime());
    const run = (v: Verification) => ({
      id: v.id,
      finishedAt: v.finishedAt,
      age: since(v.finishedAt),
      result: v.result,
      resultText: RESULTS[v.result],
      ranBy: RUNNERS[v.ranBy],
      range: v.fromSeq > v.toSeq ? 'nothing new' : `${fmt(v.fromSeq)} … ${fmt(v.toSeq)}`,
      records: fmt(v.recordsChecked),
      problem: v.problem,
    });
    const head = s.treeHead;
    kit.render(res, 'integrity.njk', {
      active: 'integrity',
      // The banner as this page reads it now (fresher than the one read before the page).
      alerts: alertsOf(s),
      head: head
        ? {
            size: fmt(Number(head.seq)),
            rootHash: head.root_hash,
            signedAt: head.signed_at,
            age: since(head.signed_at),
            kid: head.kid,
            jws: head.jws,
          }
        : null,
      headLate: s.headLate,
      unsigned: fmt(s.unsignedRecords),
      unsignedCount: s.unsignedRecords,
      headSeq: fmt(s.headSeq),
      latest: s.latest ? run(s.latest) : null,
      lastIntact: s.lastIntact ? run(s.lastIntact) : null,
      behind: s.lastIntact ? Math.max(0, s.headSeq - s.lastIntact.toSeq) : null,
      failure: s.openFailure ? run(s.openFailure) : null,
      verificationLate: s.verificationLate,
      interval: durationInWords(s.intervalMs),
      recent: recent.map(run),
      ran: req.query.ran === '1',
    });
  });

  // One bounded run now, in this request (one at a time: a second click shares the run in progress).
  router.post('/integrity/verify', ...kit.signedInForm, kit.complianceOnly, async (_req, res) => {
    await d.integrity.run('console');
    res.redirect(303, '/console/integrity?ran=1');
  });

  return router;
}

const fmt = (n: number) => n.toLocaleString('en');
