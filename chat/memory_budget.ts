/**
 * One byte budget for what the server holds in memory on behalf of clients.
 *
 * @module
 */

/** What the budget pays for. */
export const MEMORY_USES = ["recent", "unstored", "outbox"] as const;
/**
 * `recent`: the rooms' resume buffers (a cache: trimmed, never refused); `unstored`: messages
 * taken and not yet stored (queue and overlay); `outbox`: bytes the clients' sockets buffer.
 */
export type MemoryUse = typeof MEMORY_USES[number];

/** Memory that can be given back on demand (the rooms' recent buffers). */
export interface Reclaimable {
  /** Bytes held. */
  readonly bytes: number;
  /** Frees about `bytes` (at least one entry if it holds any); returns what it freed. */
  reclaim(bytes: number): number;
}

/** Told when the budget starts refusing and when it takes again. */
export interface BudgetListener {
  exhausted(usedBytes: Readonly<Record<MemoryUse, number>>): void;
  recovered(): void;
}

/**
 * Counts estimated bytes by use against one limit (`MEMORY_BUDGET`). A new message is taken only
 * if it fits once the recent buffers, the one use that is only a cache, gave back what they can:
 * past the limit, messages are refused (`backlog`) instead of the process running out of memory
 * and losing everything it queued. Estimates count two bytes per character (V8 keeps most of
 * these strings in one byte each), so the process holds less than the figures say.
 *
 * @example
 * ```ts
 * const budget = new MemoryBudget(256 * 1024 * 1024);
 * if (!budget.tryTake("unstored", bytes)) refuse("backlog");
 * budget.give("unstored", bytes); // once stored
 * ```
 */
export class MemoryBudget {
  /** The limit, in bytes. */
  readonly limitBytes: number;
  readonly #used: Record<MemoryUse, number> = { recent: 0, unstored: 0, outbox: 0 };
  #total = 0;
  readonly #reclaimable = new Set<Reclaimable>();
  #refusals = 0;
  #refusing = false;
  #listener: BudgetListener | undefined;

  constructor(limitBytes: number) {
    this.limitBytes = limitBytes;
  }

  /** Estimated bytes held, all uses together. */
  get usedBytes(): number {
    return this.#total;
  }

  /** Messages refused because they did not fit. */
  get refusals(): number {
    return this.#refusals;
  }

  /** Whether nothing more fits now (until something is stored, sent or trimmed). */
  get full(): boolean {
    return this.#total >= this.limitBytes;
  }

  /** Estimated bytes held for `use`. */
  used(use: MemoryUse): number {
    return this.#used[use];
  }

  /** Sets who hears of the budget running out and recovering (logs). */
  listen(listener: BudgetListener): void {
    this.#listener = listener;
  }

  /** Registers memory the budget may take back when it runs short. */
  register(reclaimable: Reclaimable): void {
    this.#reclaimable.add(reclaimable);
  }

  /** Forgets a {@linkcode Reclaimable} (it must have given its bytes back first). */
  unregister(reclaimable: Reclaimable): void {
    this.#reclaimable.delete(reclaimable);
  }

  /**
   * Takes `bytes` for `use` if they fit, trimming the recent buffers first if need be.
   *
   * @returns `false`, taking nothing, if they do not fit.
   */
  tryTake(use: MemoryUse, bytes: number): boolean {
    if (this.#total + bytes > this.limitBytes) this.#reclaim(this.#total + bytes - this.limitBytes);
    if (this.#total + bytes > this.limitBytes) {
      this.#refusals++;
      if (!this.#refusing) {
        this.#refusing = true;
        this.#listener?.exhausted({ ...this.#used });
      }
      return false;
    }
    if (this.#refusing) {
      this.#refusing = false;
      this.#listener?.recovered();
    }
    this.#add(use, bytes);
    return true;
  }

  /**
   * Takes `bytes` whether they fit or not (what is held already, e.g. a socket's buffer), then
   * trims the recent buffers if the total went past the limit.
   */
  take(use: MemoryUse, bytes: number): void {
    this.#add(use, bytes);
    if (this.#total > this.limitBytes) this.#reclaim(this.#total - this.limitBytes);
  }

  /** Gives back bytes taken for `use`. */
  give(use: MemoryUse, bytes: number): void {
    this.#add(use, -bytes);
  }

  #add(use: MemoryUse, bytes: number): void {
    this.#used[use] += bytes;
    this.#total += bytes;
  }

  /**
   * Frees at least `bytes` from the recent buffers if they hold that much, largest buffer first,
   * half of it at a time, so that a flood trims in a few steps rather than one entry per message.
   */
  #reclaim(bytes: number): void {
    let freed = 0;
    while (freed < bytes) {
      let largest: Reclaimable | undefined;
      for (const each of this.#reclaimable) {
        if (each.bytes > (largest?.bytes ?? 0)) largest = each;
      }
      if (!largest) return;
      const got = largest.reclaim(Math.max(bytes - freed, largest.bytes / 2));
      if (got === 0) return;
      freed += got;
    }
  }
}
