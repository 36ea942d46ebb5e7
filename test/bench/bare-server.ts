import express from 'express';

/**
 * The baseline: a bare express 5 application with one route that returns constant JSON, run as
 * its own process (like optgate) so that the two are measured the same way. Started by
 * processes.ts with PORT and HOST; stops on SIGTERM/SIGINT.
 */
const port = Number(process.env.PORT ?? 0);
const host = process.env.HOST ?? '127.0.0.1';

const app = express();
app.get('/', (_req, res) => {
  res.json({ ok: true });
});

const server = app.listen(port, host, (err?: Error) => {
  if (err) {
    process.stderr.write(`bare-server: ${err.message}\n`);
    process.exit(1);
  }
});
// Same keep-alive setting as optgate (src/server.ts).
server.keepAliveTimeout = 65_000;

const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
