/**
 * The audit log: one JSON line per admin mutation and per denial, appended before the response
 * is sent. Never contains a token.
 */
import { appendFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface AuditRecord {
  time: string;
  requestId: string;
  tokenId: string | null;
  role: string | null;
  remote: string;
  action: string;
  result: string;
  status: number;
  before?: unknown;
  after?: unknown;
  detail?: string;
}

export class AuditLog {
  private ready: Promise<unknown> | undefined;
  constructor(private readonly file: string | null) {}

  async write(r: AuditRecord): Promise<void> {
    if (this.file === null) return;
    this.ready ??= mkdir(dirname(this.file), { recursive: true });
    await this.ready;
    await appendFile(this.file, `${JSON.stringify(r)}\n`, { mode: 0o600 });
  }
}
