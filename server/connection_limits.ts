/**
 * Counts open sockets in total and per client IP, to refuse upgrades beyond the limits.
 *
 * @module
 */

/** Why an upgrade was refused, if it was. */
export type Admission = "ok" | "too_many_connections" | "too_many_from_ip";

/**
 * The counts behind `MAX_CONNECTIONS` and `MAX_CONNECTIONS_PER_IP`. The per-IP map only holds
 * addresses with an open socket, so it is bounded by the total.
 *
 * @example
 * ```ts
 * const limits = new ConnectionLimits({ total: 20_000, perIp: 100 });
 * if (limits.admit(ip) === "ok") sockets.add(socket, ip); // OpenSockets releases it on close
 * ```
 */
export class ConnectionLimits {
  readonly #total: number;
  readonly #perIp: number;
  readonly #byIp = new Map<string, number>();
  #open = 0;

  constructor(limits: { total: number; perIp: number }) {
    this.#total = limits.total;
    this.#perIp = limits.perIp;
  }

  /** Open sockets counted. */
  get open(): number {
    return this.#open;
  }

  /** Counts a new socket from `ip` if the limits allow it. */
  admit(ip: string): Admission {
    if (this.#open >= this.#total) return "too_many_connections";
    const fromIp = this.#byIp.get(ip) ?? 0;
    if (fromIp >= this.#perIp) return "too_many_from_ip";
    this.#byIp.set(ip, fromIp + 1);
    this.#open++;
    return "ok";
  }

  /** Uncounts a socket admitted for `ip`. */
  release(ip: string): void {
    const fromIp = this.#byIp.get(ip) ?? 0;
    if (fromIp <= 1) this.#byIp.delete(ip);
    else this.#byIp.set(ip, fromIp - 1);
    this.#open--;
  }
}
