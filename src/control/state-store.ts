/**
 * Saved rollout state: written atomically (temp file, fsync, rename) on every change and read back
 * at start. A corrupt or unreadable file is kept aside and reported; it never crash-loops.
 *
 * The interface is asynchronous with a compare-and-set on `version`, so that a shared store (a
 * fleet's Redis) is one more implementation: `save(state, expectedVersion)` succeeds only when
 * the stored state is still at `expectedVersion` (or nothing is stored yet), else it throws a
 * StaleWriteError and the caller's change is refused. File writes run on libuv's pool, never
 * blocking the thread that may also carry the request path (`workers: 1`).
 */
import { mkdirSync, readFileSync, renameSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';

export type Loaded<T> = { state: T } | { state: undefined; problem?: string; movedTo?: string };

export interface Versioned {
  version: number;
}

export interface StateStore<T extends Versioned> {
  /** The saved state, `undefined` when none; with `problem` when one exists but cannot be read. */
  load(): Promise<Loaded<T>>;
  /**
   * Store `state` if the stored one is at `expectedVersion` (or none is stored); else
   * StaleWriteError. `fence`: the writer's leader epoch, for a shared store that fences a deposed
   * leader's decisions (ignored by a store with one writer).
   */
  save(state: T, expectedVersion: number, fence?: number): Promise<void>;
  /**
   * A fleet's store: keep a rollback this instance applied alone (Redis away) across a restart,
   * with the rollout it ended (`of`), until `clearPending` once the fleet has it.
   */
  keepPending?(state: T, of: PendingOf): Promise<void>;
  clearPending?(): Promise<void>;
}

/** The rollout a pending rollback ended: a fleet state still in it gets the rollback written on top. */
export interface PendingOf {
  stable: string;
  rollbacks: number;
}

export class StaleWriteError extends Error {
  constructor(
    readonly expected: number,
    readonly actual: number,
    detail?: string,
  ) {
    super(detail ?? `state write expected version ${expected} but the store holds ${actual}`);
  }
}

/** A shared store cannot be reached: nothing can change now (the caller keeps what it has). */
export class StoreUnavailableError extends Error {}

export class FileStateStore<T extends Versioned> implements StateStore<T> {
  /** The version on disk as far as this process knows (it is the file's only writer). */
  private stored: number | undefined;

  constructor(
    private readonly file: string,
    private readonly validate: (raw: unknown) => T | undefined,
  ) {}

  async load(): Promise<Loaded<T>> {
    const r = this.loadSync();
    this.stored = r.state?.version;
    return r;
  }

  private loadSync(): Loaded<T> {
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { state: undefined };
      return { state: undefined, problem: `cannot read ${this.file}: ${(err as Error).message}` };
    }
    let state: T | undefined;
    let problem = 'does not match the state schema';
    try {
      state = this.validate(JSON.parse(text));
    } catch (err) {
      problem = `not JSON: ${(err as Error).message}`;
    }
    if (state !== undefined) return { state };
    const movedTo = `${this.file}.corrupt-${Date.now()}`;
    try {
      renameSync(this.file, movedTo);
    } catch {
      return { state: undefined, problem };
    }
    return { state: undefined, problem, movedTo };
  }

  async save(state: T, expectedVersion: number): Promise<void> {
    if (this.stored !== undefined && this.stored !== expectedVersion)
      throw new StaleWriteError(expectedVersion, this.stored);
    await writeFileAtomic(this.file, JSON.stringify(state, null, 1));
    this.stored = state.version;
  }
}

/** Write `text` to `file` so that a crash leaves the old file or the new one (temp, fsync, rename). */
export async function writeFileAtomic(file: string, text: string): Promise<void> {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
  // Make the rename itself durable.
  try {
    const dir = await open(dirname(file), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch {
    /* some filesystems refuse fsync on a directory; the rename is still atomic */
  }
}

/** A store that keeps state in memory (tests), with the same compare-and-set. */
export class MemoryStateStore<T extends Versioned> implements StateStore<T> {
  saved: T | undefined;
  constructor(initial?: T) {
    this.saved = initial;
  }
  async load(): Promise<Loaded<T>> {
    return this.saved === undefined ? { state: undefined } : { state: structuredClone(this.saved) };
  }
  async save(state: T, expectedVersion: number): Promise<void> {
    if (this.saved !== undefined && this.saved.version !== expectedVersion)
      throw new StaleWriteError(expectedVersion, this.saved.version);
    this.saved = structuredClone(state);
  }
}
