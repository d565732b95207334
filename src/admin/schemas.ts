/** Admin request bodies, validated by zod; failures name the field. */
import { z } from 'zod';
import { MAX_FAULT_DELAY_MS } from '../control/state.js';
import { cidr, duration, httpUrl, logLevel, percent, POOL_NAMES } from '../core/config.js';

export const weightsBody = z
  .object({
    /** Weights in percent; give both (summing to 100) or one (the other is 100 minus it). */
    weights: z
      .object({ blue: percent().optional(), green: percent().optional() })
      .strict()
      .refine((w) => w.blue !== undefined || w.green !== undefined, 'give blue, green or both')
      .refine(
        (w) => w.blue === undefined || w.green === undefined || Math.abs(w.blue + w.green - 100) < 1e-6,
        'weights must sum to 100',
      ),
    expectedVersion: z.number().int().nonnegative().optional(),
  })
  .strict();

export const startBody = z
  .object({
    steps: z
      .array(percent())
      .min(1)
      .refine((s) => s.every((v, i) => i === 0 || v > (s[i - 1] as number)), 'steps must increase')
      .optional(),
    stepHold: duration().optional(),
    dryRun: z.boolean().optional(),
    expectedVersion: z.number().int().nonnegative().optional(),
  })
  .strict();

export const shadowBody = z
  .object({
    percent: percent()
      .refine((v) => v > 0, 'must be > 0')
      .optional(),
    duration: duration().optional(),
    thenRollout: z.boolean().optional(),
    expectedVersion: z.number().int().nonnegative().optional(),
  })
  .strict();

export const commandBody = z
  .object({ expectedVersion: z.number().int().nonnegative().optional(), reason: z.string().max(500).optional() })
  .strict();

/** A body with nothing but the optional version check (DELETE /api/v1/faults). */
export const versionBody = z.object({ expectedVersion: z.number().int().nonnegative().optional() }).strict();

export const maintenanceBody = z
  .object({
    enabled: z.boolean(),
    message: z.string().max(500).optional(),
    retryAfter: duration().optional(),
    allowFrom: z.array(cidr).max(100).optional(),
    expectedVersion: z.number().int().nonnegative().optional(),
  })
  .strict();

/**
 * PUT /api/v1/faults: a share of one pool's requests aborted with a status, or delayed. At least
 * one of them must do something; a delay needs both its share and its length.
 */
export const faultsBody = z
  .object({
    pool: z.enum(POOL_NAMES),
    abortPercent: percent().default(0),
    abortStatus: z
      .number({ error: 'expected an HTTP status from 400 to 599' })
      .int('expected an HTTP status from 400 to 599')
      .min(400, 'expected an HTTP status from 400 to 599')
      .max(599, 'expected an HTTP status from 400 to 599')
      .default(503),
    delayPercent: percent().default(0),
    delayMs: z
      .number({ error: `expected milliseconds from 0 to ${MAX_FAULT_DELAY_MS}` })
      .int('expected whole milliseconds')
      .min(0, 'must be >= 0')
      .max(MAX_FAULT_DELAY_MS, `must be <= ${MAX_FAULT_DELAY_MS} (60 s)`)
      .default(0),
    expectedVersion: z.number().int().nonnegative().optional(),
  })
  .strict()
  .superRefine((b, ctx) => {
    if (b.abortPercent === 0 && b.delayPercent === 0) {
      for (const k of ['abortPercent', 'delayPercent'] as const)
        ctx.addIssue({ code: 'custom', path: [k], message: 'give abortPercent or delayPercent above 0' });
    }
    if (b.delayPercent > 0 && b.delayMs === 0)
      ctx.addIssue({ code: 'custom', path: ['delayMs'], message: 'must be above 0 when delayPercent is set' });
    if (b.delayMs > 0 && b.delayPercent === 0)
      ctx.addIssue({ code: 'custom', path: ['delayPercent'], message: 'must be above 0 when delayMs is set' });
  });

export const endpointsBody = z
  .object({
    endpoints: z.array(httpUrl).min(1, 'at least one endpoint').max(256),
    expectedVersion: z.number().int().nonnegative().optional(),
  })
  .strict();

export const logBody = z
  .object({ level: logLevel().optional(), access: z.boolean().optional() })
  .strict()
  .refine((b) => b.level !== undefined || b.access !== undefined, 'give level, access or both');

/** Complete a one-sided weights body. */
export function fullWeights(w: { blue?: number | undefined; green?: number | undefined }): {
  blue: number;
  green: number;
} {
  const r2 = (x: number) => Math.round(x * 100) / 100;
  if (w.blue !== undefined && w.green !== undefined) return { blue: w.blue, green: w.green };
  if (w.green !== undefined) return { blue: r2(100 - w.green), green: w.green };
  return { blue: w.blue as number, green: r2(100 - (w.blue as number)) };
}
