import net from 'node:net';

/**
 * A TCP proxy in front of the real PostgreSQL, for tests about the failure of that dependency:
 * `blackhole()` keeps sockets open but passes no byte (a hung server or a dead network path);
 * `refuse()` resets every connection; `heal()` forwards again.
 */
export class TcpProxy {
  private mode: 'forward' | 'blackhole' | 'refuse' = 'forward';
  private readonly pairs = new Set<[net.Socket, net.Socket]>();
  private server!: net.Server;
  port = 0;

  constructor(
    private readonly targetPort: number,
    private readonly targetHost = '127.0.0.1',
  ) {}

  async start(): Promise<this> {
    this.server = net.createServer((client) => {
      if (this.mode === 'refuse') return client.resetAndDestroy();
      const upstream = net.connect(this.targetPort, this.targetHost);
      const pair: [net.Socket, net.Socket] = [client, upstream];
      this.pairs.add(pair);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        this.pairs.delete(pair);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      client.on('data', (d) => this.mode === 'forward' && upstream.write(d));
      upstream.on('data', (d) => this.mode === 'forward' && client.write(d));
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  blackhole() {
    this.mode = 'blackhole';
  }

  refuse() {
    this.mode = 'refuse';
    for (const [client, upstream] of this.pairs) {
      client.resetAndDestroy();
      upstream.destroy();
    }
    this.pairs.clear();
  }

  heal() {
    // Connections that lost bytes while black-holed are out of step with the server: cut them.
    if (this.mode === 'blackhole') {
      for (const [client, upstream] of this.pairs) {
        client.destroy();
        upstream.destroy();
      }
    }
    this.pairs.clear();
    this.mode = 'forward';
  }

  async stop() {
    this.refuse();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
