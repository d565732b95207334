/**
 * An injected clock: milliseconds since the epoch (or any monotonic origin).
 * Constructors take one so tests can drive time by hand (STYLE.md habit 5).
 */
export type Clock = () => number;

export const systemClock: Clock = () => Date.now();
