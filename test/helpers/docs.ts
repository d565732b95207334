/**
 * Checks that keep the docs true to the code (test/unit/docs.test.ts): the sluice commands and
 * flags a Markdown file shows, the config keys, the admin API paths and the metric names it
 * names, and the YAML blocks that are sluice configs. Each check returns problems as text naming
 * the line and what is wrong, so a failure says where to look.
 */
import { parseAllDocuments } from 'yaml';
import { z } from 'zod';
import { CLIENT_COMMANDS } from '../../src/client.js';
import { configSchema, parseConfig } from '../../src/core/config.js';
import { ConfigError } from '../../src/core/errors.js';
import { CLIENT_OPTIONS, COMMAND_HELP, VALUED_FLAGS } from '../../src/help.js';

/** One line of a Markdown file, with the fenced block it is in (its info string), if any. */
export interface DocLine {
  n: number;
  text: string;
  block: string | null;
}

export function docLines(md: string): DocLine[] {
  const out: DocLine[] = [];
  let block: string | null = null;
  md.split('\n').forEach((text, i) => {
    const fence = /^\s*(```|~~~)\s*([\w-]*)/.exec(text);
    if (fence !== null) {
      block = block === null ? (fence[2] ?? '').toLowerCase() : null;
      return;
    }
    out.push({ n: i + 1, text, block });
  });
  return out;
}

/** Inline code spans of a prose line, with a table's escaped pipes unescaped. */
export function codeSpans(text: string): string[] {
  const spans: string[] = [];
  for (const m of text.matchAll(/(`+)([^`]+?)\1(?!`)/g)) spans.push((m[2] as string).replace(/\\\|/g, '|').trim());
  return spans;
}

// ---------- commands ----------

/** Split a shell command line into words, honouring quotes; stops at what ends the command. */
export function shellWords(s: string): string[] {
  const words: string[] = [];
  let cur = '';
  let quote: string | null = null;
  let inWord = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i] as string;
    if (quote !== null) {
      if (c === quote) quote = null;
      else cur += c;
      continue;
    }
    if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
      continue;
    }
    if (/\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
      continue;
    }
    if (c === ';' || (!inWord && (c === '#' || c === '>' || c === ')'))) break;
    if (!inWord && (s.startsWith('&&', i) || s.startsWith('||', i) || s.startsWith('| ', i) || s.startsWith('2>', i)))
      break;
    cur += c;
    inWord = true;
  }
  if (inWord) words.push(cur);
  return words;
}

/** A usage line of the help: the actions it names (`start`, `pause|resume`) and its flags. */
interface Usage {
  actions: string[];
  flags: Set<string>;
  /** It takes `key=value` words with these keys, or a free `<word>`. */
  keys: string[];
  free: boolean;
}

const flagsIn = (t: string) => new Set([...t.matchAll(/--[a-z][a-z-]*/g)].map((m) => m[0]));

function usages(cmd: string): Usage[] {
  const help = COMMAND_HELP[cmd];
  if (help === undefined) return [];
  const name = cmd === 'run' || cmd.startsWith('--') ? '' : `${cmd} `;
  return help
    .split(/(?=^ {2}sluice )/m)
    .filter((seg) => seg.trimStart().startsWith(`sluice ${name}`))
    .map((seg) => {
      const after = seg.trimStart().slice(`sluice ${name}`.length);
      const first = (after.split(/\s+/)[0] ?? '').replace(/^\[|\]$/g, '');
      const actions = /^[a-z]+(\|[a-z]+)*$/.test(first) ? first.split('|') : [];
      const keys = [...after.matchAll(/\b([a-z]+)=/g)].map((m) => m[1] as string);
      return { actions, flags: flagsIn(seg), keys, free: /^\s*<\w+>/.test(after) };
    });
}

const RUN_FORMS = ['run', '--check', '--version'];
const LOCAL = new Set(['hash-token', 'new-token', 'help']);

/** What is wrong with `sluice <words…>`, or undefined when the CLI takes it. */
export function checkCommand(words: readonly string[]): string | undefined {
  const bare = (w: string) => w.replace(/^\[+/, '').replace(/[\]),.`:]+$/, '');
  const flags: string[] = [];
  const positional: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = bare(words[i] as string);
    if (w === '' || w === '…' || w === '...') continue;
    if (w.startsWith('--')) {
      const name = w.split('=')[0] as string;
      flags.push(name);
      if (!w.includes('=') && VALUED_FLAGS.has(name)) i++;
    } else positional.push(w);
  }
  const first = positional[0];
  if (first !== undefined && /^<.*>$/.test(first)) return undefined; // `sluice <command> --help`
  const isRun = first === undefined || (words[0] ?? '').replace(/^\[+/, '').startsWith('--');
  if (isRun) {
    const allowed = new Set(['--help', ...RUN_FORMS.flatMap((c) => usages(c).flatMap((u) => [...u.flags]))]);
    const bad = flags.filter((f) => !allowed.has(f));
    if (bad.length > 0) return `unknown flag ${bad.join(', ')} for running or checking sluice`;
    if (positional.length > 0 && !flags.includes('--help')) return `unexpected argument ${positional[0]}`;
    return undefined;
  }
  const cmd = first as string;
  if (!CLIENT_COMMANDS.has(cmd) && !LOCAL.has(cmd)) return `unknown command ${cmd}`;
  if (cmd === 'help') return undefined;
  const forms = usages(cmd);
  const rest = positional.slice(1);
  const withActions = forms.filter((u) => u.actions.length > 0);
  let matching = forms;
  if (withActions.length > 0 && rest.length > 0) {
    const said = (rest[0] as string).split('|');
    matching = withActions.filter((u) => said.every((a) => u.actions.includes(a)));
    const known = withActions.flatMap((u) => u.actions);
    if (!said.every((a) => known.includes(a))) return `${cmd} has no action ${rest[0]} (it has ${known.join(', ')})`;
    if (matching.length === 0) matching = withActions.filter((u) => said.some((a) => u.actions.includes(a)));
    if (rest.length > 1) return `unexpected argument ${rest[1]} after ${cmd} ${rest[0]}`;
  } else {
    for (const r of rest) {
      const key = /^([a-z]+)=/.exec(r)?.[1];
      const ok = key !== undefined ? forms.some((u) => u.keys.includes(key)) : forms.some((u) => u.free);
      if (!ok) return `unexpected argument ${r} for ${cmd}`;
    }
  }
  const allowed = new Set(['--help', ...matching.flatMap((u) => [...u.flags])]);
  if (CLIENT_COMMANDS.has(cmd)) for (const f of flagsIn(CLIENT_OPTIONS)) allowed.add(f);
  const bad = flags.filter((f) => !allowed.has(f));
  if (bad.length > 0) return `unknown flag ${bad.join(', ')} for ${cmd}${rest[0] ? ` ${rest[0]}` : ''}`;
  return undefined;
}

/** Where a shell line runs sluice: `sluice …`, `npx sluice …`, `node [flags] dist/cli.js …`. */
const INVOKE =
  /(?:^|&&|\|\||;|\$\(|\s\|\s|\b(?:then|do|sudo|npx|exec)\s)\s*(?:\$\s+)?(?:sluice|node(?:\s+(?:--?[\w-]+(?:=\S+)?|\$\S+))*\s+(?:\S*\/)?dist\/cli\.js)(?=\s|$)/g;

export function commandsIn(line: string): string[][] {
  return [...line.matchAll(INVOKE)].map((m) => shellWords(line.slice((m.index as number) + m[0].length)));
}

/** A code span that is a command: `sluice …` or `node dist/cli.js …`. */
export function spanCommand(span: string): string[] | undefined {
  const m = /^(?:sluice|node(?:\s+--?[\w-]+(?:=\S+)?)*\s+dist\/cli\.js)(?:\s+|$)/.exec(span);
  if (m === null) return undefined;
  return shellWords(span.slice(m[0].length));
}

// ---------- config keys ----------

interface JsonSchema {
  properties?: Record<string, JsonSchema>;
  anyOf?: JsonSchema[];
  items?: JsonSchema;
}

const props = (s: JsonSchema) => s.properties ?? s.anyOf?.find((a) => a.properties)?.properties;
const items = (s: JsonSchema) => s.items ?? s.anyOf?.find((a) => a.items)?.items;

const schema = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
export const TOP_LEVEL = new Set(Object.keys(schema.properties ?? {}));
/** Top-level keys that hold keys: only a name starting with one of them can be a dotted config key. */
const NESTED = new Set(
  Object.entries(schema.properties ?? {})
    .filter(([, s]) => props(s) !== undefined || items(s)?.properties !== undefined)
    .map(([k]) => k),
);
/** Webhook event names (`rollout.paused`): dotted, but values of `webhooks[].events`, not keys. */
export const EVENTS: ReadonlySet<string> = new Set(
  (props(items(props(schema)?.webhooks ?? {}) ?? {})?.events as { items?: { enum?: string[] } } | undefined)?.items
    ?.enum ?? [],
);
/** Docs write `analysis.x` for `rollout.analysis.x`, as the contract does. */
const ALIASES: Record<string, string[]> = { analysis: ['rollout', 'analysis'] };

function exists(s: JsonSchema, path: readonly string[]): boolean {
  if (path.length === 0) return true;
  const [head, ...tail] = path as [string, ...string[]];
  if (head === '*') return Object.values(props(s) ?? {}).some((c) => exists(c, tail));
  if (/^\d+$/.test(head)) {
    const it = items(s);
    return it !== undefined && exists(it, tail);
  }
  const name = head.replace(/\[\]$/, '');
  const child = props(s)?.[name];
  if (child !== undefined) {
    if (head.endsWith('[]')) {
      const it = items(child);
      return it !== undefined && exists(it, tail);
    }
    return exists(child, tail);
  }
  // A list of objects reads as its element: `webhooks.format`, `admin.tokens.role`.
  const it = items(s);
  return it !== undefined && exists(it, path);
}

/** Whether `a.b.c` is a key of the config schema. */
export function isConfigKey(key: string): boolean {
  const path = key.split('.');
  const alias = ALIASES[path[0] as string];
  return exists(schema, alias === undefined ? path : [...alias, ...path.slice(1)]);
}

const NOT_KEYS =
  /\.(ts|js|mjs|cjs|md|json|jsonl|ya?ml|html|css|pem|key|crt|service|txt|log|com|org|net|io|dev|example|internal|local)$/;

/**
 * The dotted names in a code span whose first part is a top-level config key that holds keys;
 * webhook events and the names in `others` (audit actions: `faults.set`) are not keys.
 */
export function configKeysIn(span: string, others: ReadonlySet<string> = new Set()): string[] {
  const keys: string[] = [];
  for (const m of span.matchAll(
    /(?<![\w/.$:-])([a-z][A-Za-z0-9]*(?:\.(?:[A-Za-z][A-Za-z0-9]*(?:\[\])?|\*|\d+))+)(?![\w(/-])/g,
  )) {
    const key = m[1] as string;
    const head = key.split('.')[0] as string;
    if (EVENTS.has(key) || others.has(key) || NOT_KEYS.test(key)) continue;
    if (NESTED.has(head) || head in ALIASES) keys.push(key);
  }
  return keys;
}

// ---------- admin API paths ----------

export interface RouteSpec {
  method: string;
  path: string;
}

/** Each path an `/api/v1/…` mention stands for: `{blue|green}` expands, `{pool}` is any segment. */
function expand(path: string): RegExp[] {
  const alt = /\{([^}]*\|[^}]*)\}/.exec(path);
  if (alt !== null)
    return (alt[1] as string).split('|').flatMap((a) => expand(path.replace(alt[0], a.replace(/\\$/, ''))));
  const esc = path
    .split(/\{[^}]*\}/)
    .map((p) => p.replace(/[.*+?^$()[\]\\]/g, '\\$&'))
    .join('[^/]+');
  return [new RegExp(`^${esc}$`)];
}

/** What is wrong with each `[METHOD] /api/v1/…` a line names. */
export function apiProblems(line: string, routes: readonly RouteSpec[]): string[] {
  const out: string[] = [];
  const text = line.replace(/\\\|/g, '|');
  for (const m of text.matchAll(
    /(?:\b(GET|PUT|POST|DELETE|PATCH)\s+)?(\/api\/v1\/[A-Za-z0-9_{}|/.-]*[A-Za-z0-9_}])/g,
  )) {
    const method = m[1];
    const path = m[2] as string;
    for (const re of expand(path)) {
      const found = routes.filter((r) => re.test(r.path));
      if (found.length === 0) out.push(`no route ${path}`);
      else if (method !== undefined && !found.some((r) => r.method === method))
        out.push(`no ${method} ${path} (it has ${[...new Set(found.map((r) => r.method))].join(', ')})`);
    }
  }
  return out;
}

// ---------- YAML configs ----------

const POOLS = { blue: { endpoints: ['http://127.0.0.1:1'] }, green: { endpoints: ['http://127.0.0.1:2'] } };

/**
 * Problems of a YAML block, when it is a sluice config: it has `pools`, or every key it has is a
 * top-level config key. Blocks of other tools' YAML are left alone. Missing pools are filled in.
 */
export function yamlProblems(text: string): string[] {
  const out: string[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) {
      out.push(`not YAML: ${doc.errors[0]?.message.split('\n')[0]}`);
      continue;
    }
    const raw = doc.toJS() as unknown;
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) continue;
    const obj = raw as Record<string, unknown>;
    const keys = Object.keys(obj);
    if (!('pools' in obj) && !keys.every((k) => TOP_LEVEL.has(k))) continue;
    const pools = { ...POOLS, ...((obj.pools as object | null) ?? {}) };
    try {
      parseConfig({ ...obj, pools });
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      out.push(...err.problems);
    }
  }
  return out;
}

// ---------- a whole file ----------

/** A block's lines without the indent they share (a block inside a list item). */
function dedent(lines: readonly string[]): string {
  const indents = lines.filter((l) => l.trim() !== '').map((l) => (/^ */.exec(l) as RegExpExecArray)[0].length);
  const cut = indents.length === 0 ? 0 : Math.min(...indents);
  return lines.map((l) => l.slice(cut)).join('\n');
}

export interface Known {
  routes: readonly RouteSpec[];
  /** Dotted names that are not config keys: the audit actions of the routes. */
  actions: ReadonlySet<string>;
  metrics: ReadonlySet<string>;
}

/** Every problem of one Markdown file, as `file:line: problem: text`. */
export function docProblems(file: string, md: string, known: Known): string[] {
  const out: string[] = [];
  const lines = docLines(md);
  const say = (l: DocLine, problem: string, text = l.text.trim()) => out.push(`${file}:${l.n}: ${problem}: ${text}`);
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i] as DocLine;
    const shell = l.block !== null && ['', 'sh', 'bash', 'shell', 'console', 'zsh'].includes(l.block);
    if (shell) {
      // A continued line is one command.
      let text = l.text;
      while (text.endsWith('\\') && lines[i + 1]?.block === l.block) text = `${text.slice(0, -1)} ${lines[++i]?.text}`;
      for (const words of commandsIn(text.trim())) {
        const p = checkCommand(words);
        if (p !== undefined) say(l, p, text.trim());
      }
    }
    if (l.block === null) {
      for (const span of codeSpans(l.text)) {
        const words = spanCommand(span);
        if (words !== undefined) {
          const p = checkCommand(words);
          if (p !== undefined) say(l, p, `\`${span}\``);
        }
        for (const key of configKeysIn(span, known.actions))
          if (!isConfigKey(key)) say(l, `no config key ${key}`, `\`${span}\``);
      }
    }
    for (const p of apiProblems(l.text, known.routes)) say(l, p);
    for (const m of l.text.matchAll(/\bsluice_[a-z0-9_]*[a-z0-9]/g)) {
      const name = m[0].replace(/_(bucket|sum|count)$/, '');
      if (!known.metrics.has(name) && !known.metrics.has(m[0])) say(l, `no metric ${m[0]}`);
    }
  }
  // YAML blocks, whole.
  let open = false;
  let yamlAt = 0;
  let body: string[] = [];
  md.split('\n').forEach((text, i) => {
    const fence = /^\s*(```|~~~)\s*([\w-]*)/.exec(text);
    if (fence === null) {
      if (open) body.push(text);
    } else if (!open) {
      open = true;
      yamlAt = ['yaml', 'yml'].includes((fence[2] ?? '').toLowerCase()) ? i + 1 : 0;
      body = [];
    } else {
      open = false;
      if (yamlAt > 0) for (const p of yamlProblems(dedent(body))) out.push(`${file}:${yamlAt}: YAML config: ${p}`);
    }
  });
  return out;
}
