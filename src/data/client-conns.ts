/**
 * Open connections per client address, shared by every worker (limits.maxConnectionsPerClient).
 * A SharedArrayBuffer holds one column of counters per worker, indexed by a hash of the address:
 * a worker adds to its own column (Atomics) and reads the sum of all columns, so a client's
 * connections count wherever the kernel placed them, as nginx's limit_conn does with its shared
 * zone. A worker that died leaves its column behind: the main thread zeroes it before the
 * replacement starts. Approximations, stated: two addresses that hash to the same slot (of
 * 65,536) share one budget, and two connections opening at the same instant on two workers may
 * both take the last place.
 */
import { murmurHash2 } from './murmur.js';

export const SLOTS = 65_536;

/** The shared counters for `columns` workers. */
export function clientConnBuffer(columns: number): SharedArrayBuffer {
  return new SharedArrayBuffer(columns * SLOTS * 4);
}

/** Forget a column's counts (its worker is gone, and with it every connection it counted). */
export function clearColumn(buffer: SharedArrayBuffer, column: number): void {
  new Int32Array(buffer, column * SLOTS * 4, SLOTS).fill(0);
}

export interface ConnColumn {
  buffer: SharedArrayBuffer;
  /** This worker's column. */
  column: number;
  columns: number;
}

export class ClientConnections {
  private readonly view: Int32Array;
  private readonly column: number;
  private readonly columns: number;

  constructor(
    private readonly max: number,
    shared: ConnColumn = { buffer: clientConnBuffer(1), column: 0, columns: 1 },
  ) {
    this.view = new Int32Array(shared.buffer);
    this.column = shared.column;
    this.columns = shared.columns;
  }

  /** The slot of an address (computed once per connection, kept for `close`). */
  slot(peer: string): number {
    return murmurHash2(peer) & (SLOTS - 1);
  }

  /** Count a new connection in `slot`, or refuse it when the client already has `max` open. */
  open(slot: number): boolean {
    let n = 0;
    for (let c = 0; c < this.columns; c++) n += Atomics.load(this.view, c * SLOTS + slot);
    if (n >= this.max) return false;
    Atomics.add(this.view, this.column * SLOTS + slot, 1);
    return true;
  }

  close(slot: number): void {
    Atomics.sub(this.view, this.column * SLOTS + slot, 1);
  }
}
