/**
 * One sluice in front of two recording upstreams, shared by every test of a file (started in
 * beforeAll, stopped in afterAll), with the upstreams' raw byte counters reset before each test
 * so a test can assert that nothing reached them.
 */
import { afterAll, beforeAll, beforeEach } from 'vitest';
import type { ConfigInput } from '../../src/core/config.js';
import { startTestSluice, type TestSluice } from './sluice.js';
import { jsonOk, startUpstream, type Behaviour, type TestUpstream } from './upstream.js';

export interface Fixture {
  blue: TestUpstream;
  green: TestUpstream;
  sluice: TestSluice;
  /** Raw TCP bytes both upstreams received since the test began. */
  upstreamBytes(): number;
}

export function sharedSluice(extra: Partial<ConfigInput>, behaviour: (name: string) => Behaviour = jsonOk): Fixture {
  const fx = {
    upstreamBytes: () => fx.blue.bytesReceived + fx.green.bytesReceived,
  } as Fixture;
  beforeAll(async () => {
    fx.blue = await startUpstream('blue', behaviour('blue'));
    fx.green = await startUpstream('green', behaviour('green'));
    fx.sluice = await startTestSluice(fx.blue.url, fx.green.url, extra);
  });
  afterAll(async () => {
    await fx.sluice?.stop();
    await fx.blue?.close();
    await fx.green?.close();
  });
  beforeEach(() => {
    fx.blue.bytesReceived = 0;
    fx.green.bytesReceived = 0;
  });
  return fx;
}
