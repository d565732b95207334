/** Slack-format webhooks: the words for each event, escaped as Slack's mrkdwn requires. */
import { describe, expect, it } from 'vitest';
import { slackEscape, slackMessage } from '../../src/control/slack.js';

const payload = {
  by: 'auto',
  reason: 'green error rate 4.8% (41/850, 99% lower bound 3.26%) > 1% over 10s',
  version: 7,
  canary: 'green',
  weights: { blue: 100, green: 0 },
  phase: 'rolled_back',
};

describe('slackMessage', () => {
  it('a rollback: icon, title, weights and the reason with its numbers', () => {
    const m = slackMessage('rollout.rolled_back', payload, 'checkout');
    expect(m.text).toBe(
      ':rotating_light: *green ROLLED BACK* (blue 100% · green 0%) — checkout\ngreen error rate 4.8% (41/850, 99% lower bound 3.26%) &gt; 1% over 10s',
    );
    expect(m.blocks).toEqual([
      { type: 'section', text: { type: 'mrkdwn', text: m.text } },
      {
        type: 'context',
        elements: [{ type: 'mrkdwn', text: 'sluice rollout.rolled_back · by auto · phase rolled_back · version 7' }],
      },
    ]);
  });

  it.each([
    ['rollout.started', ':rocket: *green rollout started*'],
    ['rollout.step', ':arrow_up: *green stepped up*'],
    ['rollout.promoted', ':white_check_mark: *promoted*'],
    ['maintenance.changed', ':construction: *maintenance mode changed*'],
    ['shadow.failed', ':x: *green shadow FAILED*'],
    ['something.new', ':information_source: *something.new*'],
  ])('%s', (event, head) => {
    expect(slackMessage(event, { ...payload, reason: '' }).text).toBe(`${head} (blue 100% · green 0%)`);
  });

  it('escapes what mrkdwn reserves, so a reason cannot become a link or a mention', () => {
    expect(slackEscape('a <@U1> & <http://x|y>')).toBe('a &lt;@U1&gt; &amp; &lt;http://x|y&gt;');
    expect(slackMessage('rollout.aborted', { ...payload, reason: 'aborted by <!channel>' }).text).toMatch(
      /aborted by &lt;!channel&gt;$/,
    );
  });
});
