/**
 * The audit log: one JSON line per admin mutation, always in full, and per denial, collapsed per
 * source per minute (denials.ts); appended before the response is sent. Never contains a token.
 *
 * Size bound, `audit.maxBytes`: past it, denials are no longer written, and one line says so;
 * mutations still are. Chosen over rotating to `<file>.1` because a rotation that sluice does
 * itself would let a flood of denials push the record of changes out of the file; mutations need
 * an operator token, so nobody without one can grow the file past the bound. Rotation is
 * logrotate's job: move the file, send SIGUSR1, and `reopen()` starts a new file (with denials
 * written again).
 */
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Clock } from '../core/clock.js';
import { type CollapseOptions, DEFAULT_COLLAPSE, DenialCollapser, type Timed } from './denials.js';

/** One audit line before the log stamps its `time`. */
export interface AuditEntry {
  requestId: string | null;
  tokenId: string | null;
  role: string | null;
  remote: string;
  action: string;
  result: string;
  status: number;
  before?: unknown;
  after?: unknown;
  detail?: string;
  [extra: string]: unknown;
}

export interface AuditRecord extends AuditEntry {
  time: string;
}

export interface AuditOptions {
  /** Past this file size, denials are no longer written (mutations are). */
  maxBytes: number;
  clock: Clock;
  collapse?: CollapseOptions;
  /** Real milliseconds between looks for ended windows to summarise. */
  sweepMs?: number;
  /** Where a failed write from the background sweep goes (a request's own write fails its request). */
  onError?: (err: unknown) => void;
}

export class AuditLog {
  private handle: FileHandle | undefined;
  private size = 0;
  private full = false;
  private closed = false;
  private queue: Promise<void> = Promise.resolve();
  private sweep: NodeJS.Timeout | undefined;
  private readonly denials: DenialCollapser;

  constructor(
    private readonly file: string | null,
    private readonly opts: AuditOptions,
  ) {
    this.denials = new DenialCollapser(opts.collapse ?? DEFAULT_COLLAPSE, opts.clock);
  }

  /** A mutation, or a rejected attempt at one: always written in full. */
  write(entry: AuditEntry): Promise<void> {
    return this.append([{ at: this.opts.clock(), entry }], false);
  }

  /**
   * A denial from `source` (rate-limit.ts `sourceOf`): written at once when it opens the
   * source's window, else counted into the window's summary line.
   */
  deny(source: string, entry: AuditEntry): Promise<void> {
    if (this.file === null) return Promise.resolve();
    const lines = this.denials.add(source, entry);
    if (this.sweep === undefined && !this.closed) {
      this.sweep = setInterval(() => {
        this.flushEnded().catch((err: unknown) => this.opts.onError?.(err));
      }, this.opts.sweepMs ?? 5000);
      this.sweep.unref();
    }
    return lines.length === 0 ? Promise.resolve() : this.append(lines, true);
  }

  /** Write the summary lines of the windows that have ended (the sweep calls it). */
  flushEnded(): Promise<void> {
    const lines = this.denials.due();
    return lines.length === 0 ? Promise.resolve() : this.append(lines, true);
  }

  /** Close the file and open it again, e.g. on SIGUSR1 after logrotate moved it away. */
  reopen(): Promise<void> {
    if (this.file === null) return Promise.resolve();
    return this.enqueue(async () => {
      await this.closeHandle();
      await this.ensureOpen(this.file as string);
    });
  }

  /** Write the summaries of every open window and close the file. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.sweep !== undefined) clearInterval(this.sweep);
    const lines = this.denials.drain();
    if (lines.length > 0) await this.append(lines, true);
    await this.enqueue(() => this.closeHandle());
  }

  private append(lines: readonly Timed[], denials: boolean): Promise<void> {
    const file = this.file;
    if (file === null) return Promise.resolve();
    return this.enqueue(async () => {
      const h = await this.ensureOpen(file);
      let text = '';
      let bytes = this.size;
      for (const { at, entry } of lines) {
        if (denials && this.full) continue;
        const line = `${JSON.stringify({ time: new Date(at).toISOString(), ...entry })}\n`;
        bytes += Buffer.byteLength(line);
        if (denials && bytes > this.opts.maxBytes) {
          this.full = true;
          text += `${JSON.stringify({
            time: new Date(at).toISOString(),
            action: 'audit.denials_suppressed',
            result: 'suppressed',
            maxBytes: this.opts.maxBytes,
            detail: `${file} reached audit.maxBytes: denials are no longer written until it is rotated (SIGUSR1 reopens it); mutations still are`,
          })}\n`;
          continue;
        }
        text += line;
      }
      const buf = Buffer.from(text);
      try {
        for (let off = 0; off < buf.length; ) off += (await h.write(buf, off, buf.length - off, null)).bytesWritten;
      } catch (err) {
        await this.closeHandle().catch(() => {});
        throw err;
      }
      this.size += buf.length;
      // A stray write after close (a request that was still under way) leaves no file open.
      if (this.closed) await this.closeHandle();
    });
  }

  /** Run `task` after every write queued before it: lines keep their order and the size stays exact. */
  private enqueue(task: () => Promise<void>): Promise<void> {
    const p = this.queue.then(task);
    this.queue = p.catch(() => {});
    return p;
  }

  private async ensureOpen(file: string): Promise<FileHandle> {
    if (this.handle !== undefined) return this.handle;
    await mkdir(dirname(file), { recursive: true });
    const h = await open(file, 'a', 0o600);
    try {
      this.size = (await h.stat()).size;
    } catch (err) {
      await h.close();
      throw err;
    }
    this.full = false;
    this.handle = h;
    return h;
  }

  private async closeHandle(): Promise<void> {
    const h = this.handle;
    this.handle = undefined;
    await h?.close();
  }
}
