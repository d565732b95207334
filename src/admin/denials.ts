/**
 * Collapses repeated admin denials into one audit line per source per minute (issue 15: 20,000
 * wrong-token requests used to add 20,000 lines). The first denial of a source's window is
 * written at once, in full; later ones in the window are only counted, and one summary line with
 * the count is written when the window ends (or at close). So the sum of `count` over the lines
 * is the number of denials, and the lines per window are at most 2 × (maxSources + 1).
 *
 * Pure apart from the injected clock: the caller writes what it returns.
 */
import type { Clock } from '../core/clock.js';
import type { AuditEntry } from './audit.js';

export interface CollapseOptions {
  windowMs: number;
  /** Sources tracked per window; denials from further sources share one bucket, source `*`. */
  maxSources: number;
}

export const DEFAULT_COLLAPSE: CollapseOptions = { windowMs: 60_000, maxSources: 100 };

interface Bucket {
  source: string;
  tokenId: string | null;
  role: string | null;
  since: number;
  /** Denials counted since the line written at the window's start. */
  count: number;
  codes: Record<string, number>;
  lastRequestId: string | null;
  lastStatus: number;
}

/** A line to write, with the clock reading it describes. */
export interface Timed {
  at: number;
  entry: AuditEntry;
}

export class DenialCollapser {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly opts: CollapseOptions,
    private readonly clock: Clock,
  ) {}

  /**
   * A denial from `source`. Returns the lines to write now: the summary of this source's ended
   * window, if any, then this denial in full when it opens a window; nothing when it is counted.
   */
  add(source: string, entry: AuditEntry): Timed[] {
    const now = this.clock();
    const out: Timed[] = [];
    // An authenticated principal's denials (403 for a role, 415, 413) are kept apart from
    // anonymous ones from the same address: they name who did it.
    let key = `${source} ${entry.tokenId ?? ''}`;
    let b = this.buckets.get(key);
    if (b !== undefined && now - b.since >= this.opts.windowMs) {
      const s = summary(b, now);
      if (s !== undefined) out.push(s);
      this.buckets.delete(key);
      b = undefined;
    }
    if (b === undefined && this.buckets.size >= this.opts.maxSources) {
      for (const line of this.due()) out.push(line);
      if (this.buckets.size >= this.opts.maxSources) {
        key = '*';
        b = this.buckets.get(key);
      }
    }
    if (b === undefined) {
      const isAll = key === '*';
      this.buckets.set(key, {
        source: isAll ? '*' : source,
        tokenId: isAll ? null : entry.tokenId,
        role: isAll ? null : entry.role,
        since: now,
        count: 0,
        codes: {},
        lastRequestId: null,
        lastStatus: entry.status,
      });
      out.push({ at: now, entry: { ...entry, source, count: 1 } });
      return out;
    }
    b.count++;
    const code = `${entry.status} ${typeof entry.detail === 'string' ? entry.detail : entry.result}`;
    b.codes[code] = (b.codes[code] ?? 0) + 1;
    b.lastRequestId = entry.requestId;
    b.lastStatus = entry.status;
    return out;
  }

  /** Summaries of the windows that have ended; those windows are forgotten. */
  due(): Timed[] {
    const now = this.clock();
    const out: Timed[] = [];
    for (const [k, b] of this.buckets) {
      if (now - b.since < this.opts.windowMs) continue;
      const s = summary(b, now);
      if (s !== undefined) out.push(s);
      this.buckets.delete(k);
    }
    return out;
  }

  /** Summaries of every open window (at close); all windows are forgotten. */
  drain(): Timed[] {
    const now = this.clock();
    const out = [...this.buckets.values()].map((b) => summary(b, now)).filter((s) => s !== undefined);
    this.buckets.clear();
    return out;
  }

  /** Open windows. */
  get size(): number {
    return this.buckets.size;
  }
}

function summary(b: Bucket, now: number): Timed | undefined {
  if (b.count === 0) return undefined;
  const codes = Object.entries(b.codes)
    .map(([c, n]) => `${c} ×${n}`)
    .join(', ');
  return {
    at: now,
    entry: {
      requestId: b.lastRequestId,
      tokenId: b.tokenId,
      role: b.role,
      remote: b.source,
      action: 'denials',
      result: 'denied',
      status: b.lastStatus,
      source: b.source,
      count: b.count,
      since: new Date(b.since).toISOString(),
      codes: b.codes,
      detail: `${b.count} more denial${b.count === 1 ? '' : 's'} from ${b.source === '*' ? 'other sources' : b.source} since the window opened (${codes})`,
    },
  };
}
