/**
 * Saved rollout state: written atomically (temp file, fsync, rename) on every change and read back
 * at start. A corrupt or unreadable file is kept aside and reported; it never crash-loops.
 * The interface is small so a shared store (fleet mode) can replace the file.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

export interface StateStore<T> {
  /** The saved state, `undefined` when none; `{ corrupt }` when one exists but cannot be read. */
  load(): { state: T } | { state: undefined; problem?: string; movedTo?: string };
  save(state: T): void;
}

export class FileStateStore<T> implements StateStore<T> {
  constructor(
    private readonly file: string,
    private readonly validate: (raw: unknown) => T | undefined,
  ) {}

  load(): { state: T } | { state: undefined; problem?: string; movedTo?: string } {
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

  save(state: T): void {
    mkdirSync(dirname(this.file), { recursive: true });
    const tmp = `${this.file}.tmp-${process.pid}`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, JSON.stringify(state, null, 1));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.file);
    // Make the rename itself durable.
    try {
      const dfd = openSync(dirname(this.file), 'r');
      try {
        fsyncSync(dfd);
      } finally {
        closeSync(dfd);
      }
    } catch {
      /* some filesystems refuse fsync on a directory; the rename is still atomic */
    }
  }
}

/** A store that keeps state in memory (tests, and `stateFile: null` if ever allowed). */
export class MemoryStateStore<T> implements StateStore<T> {
  saved: T | undefined;
  constructor(initial?: T) {
    this.saved = initial;
  }
  load(): { state: T } | { state: undefined } {
    return this.saved === undefined ? { state: undefined } : { state: this.saved };
  }
  save(state: T): void {
    this.saved = structuredClone(state);
  }
}
