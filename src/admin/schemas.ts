/** Admin request bodies, validated by zod; failures name the field. */
import { z } from 'zod';
import { cidr, duration, httpUrl, logLevel, percent } from '../core/config.js';

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

export const maintenanceBody = z
  .object({
    enabled: z.boolean(),
    message: z.string().max(500).optional(),
    retryAfter: duration().optional(),
    allowFrom: z.array(cidr).max(100).optional(),
    expectedVersion: z.number().int().nonnegative().optional(),
  })
  .strict();

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
