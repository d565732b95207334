/**
 * Webhook messages people read: a rollout event as a Slack incoming-webhook message (`text` for
 * notifications and clients without blocks, `blocks` for the channel). Pure: the notifier sends
 * what this returns. The reason already carries the numbers behind an automatic decision.
 */

const TITLES: Readonly<Record<string, { icon: string; title: (canary: string) => string }>> = {
  'rollout.started': { icon: ':rocket:', title: (c) => `${c} rollout started` },
  'rollout.step': { icon: ':arrow_up:', title: (c) => `${c} stepped up` },
  'rollout.paused': { icon: ':double_vertical_bar:', title: (c) => `${c} rollout paused` },
  'rollout.resumed': { icon: ':arrow_forward:', title: (c) => `${c} rollout resumed` },
  'rollout.promoted': { icon: ':white_check_mark:', title: () => 'promoted' },
  'rollout.rolled_back': { icon: ':rotating_light:', title: (c) => `${c} ROLLED BACK` },
  'rollout.aborted': { icon: ':leftwards_arrow_with_hook:', title: (c) => `${c} rollout aborted` },
  'rollout.would_roll_back': { icon: ':warning:', title: (c) => `${c} would roll back (dry run)` },
  'weights.changed': { icon: ':control_knobs:', title: () => 'weights changed' },
  'maintenance.changed': { icon: ':construction:', title: () => 'maintenance mode changed' },
  'endpoints.changed': { icon: ':electric_plug:', title: () => 'endpoints changed' },
  'shadow.started': { icon: ':ghost:', title: (c) => `${c} shadow started` },
  'shadow.stopped': { icon: ':ghost:', title: (c) => `${c} shadow stopped` },
  'shadow.passed': { icon: ':white_check_mark:', title: (c) => `${c} shadow passed` },
  'shadow.failed': { icon: ':x:', title: (c) => `${c} shadow FAILED` },
};

/** Slack's mrkdwn reserves &, < and > (https://api.slack.com/reference/surfaces/formatting#escaping). */
export const slackEscape = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export interface SlackMessage {
  text: string;
  blocks: unknown[];
}

/** The message for one event and the payload the JSON format would send. */
export function slackMessage(event: string, payload: Record<string, unknown>, name?: string): SlackMessage {
  const canary = String(payload.canary ?? 'canary');
  const t = TITLES[event] ?? { icon: ':information_source:', title: () => event };
  const w = payload.weights as { blue?: number; green?: number } | undefined;
  const weights = w === undefined ? '' : ` (blue ${w.blue ?? 0}% · green ${w.green ?? 0}%)`;
  const reason = typeof payload.reason === 'string' && payload.reason !== '' ? payload.reason : '';
  const head = `${t.icon} *${slackEscape(t.title(canary))}*${weights}${name === undefined ? '' : ` — ${slackEscape(name)}`}`;
  const text = reason === '' ? head : `${head}\n${slackEscape(reason)}`;
  const context = [
    `by ${String(payload.by ?? 'auto')}`,
    `phase ${String(payload.phase ?? '-')}`,
    `version ${String(payload.version ?? '-')}`,
  ].join(' · ');
  return {
    text,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text } },
      { type: 'context', elements: [{ type: 'mrkdwn', text: slackEscape(`sluice ${event} · ${context}`) }] },
    ],
  };
}
