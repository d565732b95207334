/**
 * The unit tests only (test/unit), with the settings of vitest.config.ts: what mutation testing
 * runs (stryker.config.mjs). Restricting them here rather than with Stryker's `testFiles` keeps
 * mutants in code that runs at import ("static" mutants) active while modules load: with
 * `testFiles`, Stryker 10 activates them only once the tests start, so they read as survivors.
 */
import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

export default defineConfig({ ...base, test: { ...base.test, include: ['test/unit/**/*.test.ts'] } });
