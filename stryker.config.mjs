// Mutation testing of the pure core (unit tests only): `npm run test:mutation`. See docs/mutation.md.
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  plugins: ['@stryker-mutator/vitest-runner'],
  // Unit tests only (test/vitest.unit.config.ts); not Stryker's `testFiles`, which leaves mutants
  // in code that runs at import inactive while modules load. `related: false`: every unit test.
  vitest: { configFile: 'test/vitest.unit.config.ts', related: false },
  mutate: [
    'src/stats/snapshot.ts',
    'src/stats/window.ts',
    'src/stats/totals.ts',
    'src/control/analysis.ts',
    'src/control/decide.ts',
    'src/control/endpoints.ts',
    'src/data/select.ts',
    'src/data/murmur.ts',
    'src/data/headers.ts',
  ],
  // TypeScript 7 has no JavaScript compiler API: a tsconfig Stryker finds makes it crash
  // (ts.parseConfigFileTextToJson is not a function). Point it at none; no typescript-checker.
  tsconfigFile: 'stryker-no-tsconfig.json',
  coverageAnalysis: 'perTest',
  concurrency: 2,
  timeoutFactor: 3,
  // dist stays: a unit test (gc.test.ts) runs dist/core/gc.js.
  ignorePatterns: ['/coverage', '/reports', '/bench/results', '/.ab', '/data'],
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  tempDirName: '.stryker-tmp',
  cleanTempDir: true,
};
