/**
 * A TCP proxy on 127.0.0.1 that a test can cut and restore: the way to inject a network outage
 * between the server and a shared service without touching the service.
 */

export class TcpProxy {
  readonly #listener: Deno.TcpListener;
  readonly #target: { hostname: string; port: number };
  readonly #connections = new Set<Deno.TcpConn>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #accepting: Promise<void>;
  #cut = false;

  private constructor(target: { hostname: string; port: number }) {
    this.#target = target;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accepting = this.#accept();
  }

  /** Listens on a free port and forwards every connection to `target`. */
  static start(target: { hostname: string; port: number }): TcpProxy {
    return new TcpProxy(target);
  }

  get port(): number {
    return this.#listener.addr.port;
  }

  /** Drops every open connection and refuses new ones until {@linkcode TcpProxy.restore}. */
  cut(): void {
    this.#cut = true;
    for (const conn of this.#connections) closeQuietly(conn);
    this.#connections.clear();
  }

  restore(): void {
    this.#cut = false;
  }

  async close(): Promise<void> {
    this.cut();
    this.#listener.close();
    await this.#accepting;
    await Promise.all([...this.#tasks]);
  }

  async #accept(): Promise<void> {
    for (;;) {
      let client: Deno.TcpConn;
      try {
        client = await this.#listener.accept();
      } catch (error) {
        if (error instanceof Deno.errors.BadResource) return; // listener closed
        throw error;
      }
      if (this.#cut) {
        closeQuietly(client);
        continue;
      }
      this.#track(this.#forward(client));
    }
  }

  async #forward(client: Deno.TcpConn): Promise<void> {
    this.#connections.add(client);
    let upstream: Deno.TcpConn;
    try {
      upstream = await Deno.connect(this.#target);
    } catch (error) {
      this.#connections.delete(client);
      closeQuietly(client);
      if (error instanceof Deno.errors.ConnectionRefused) return;
      throw error;
    }
    if (this.#cut) {
      closeQuietly(client);
      closeQuietly(upstream);
      return;
    }
    this.#connections.add(upstream);
    await Promise.all([pump(client, upstream), pump(upstream, client)]);
    this.#connections.delete(client);
    this.#connections.delete(upstream);
    closeQuietly(client);
    closeQuietly(upstream);
  }

  #track(task: Promise<void>): void {
    this.#tasks.add(task);
    const forget = () => this.#tasks.delete(task);
    task.then(forget, forget);
  }
}

/** Copies bytes until either side closes; a cut connection ends the copy, not the test. */
async function pump(from: Deno.TcpConn, to: Deno.TcpConn): Promise<void> {
  const buffer = new Uint8Array(64 * 1024);
  for (;;) {
    let read: number | null;
    try {
      read = await from.read(buffer);
    } catch (error) {
      if (isConnectionEnd(error)) return;
      throw error;
    }
    if (read === null) {
      closeQuietly(to);
      return;
    }
    try {
      let written = 0;
      while (written < read) written += await to.write(buffer.subarray(written, read));
    } catch (error) {
      if (isConnectionEnd(error)) return;
      throw error;
    }
  }
}

function isConnectionEnd(error: unknown): boolean {
  return error instanceof Deno.errors.BadResource ||
    error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.Interrupted ||
    error instanceof Deno.errors.NotConnected;
}

function closeQuietly(conn: Deno.TcpConn): void {
  try {
    conn.close();
  } catch (error) {
    // Already closed by the other pump: that is the outcome we wanted.
    if (!(error instanceof Deno.errors.BadResource)) throw error;
  }
}
