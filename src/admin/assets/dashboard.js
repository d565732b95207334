// sluice live page: reads /api/v1/events (SSE over fetch, so a bearer token can be sent) and
// /api/v1/series (the last 15 minutes per interval, backfilled on load, then only what is new),
// draws the split, the rollout, both pools' rate / error rate / p95 with time axes, the thresholds
// and a marker per step, promotion and rollback with its reason, endpoint health and the history,
// and sends commands. No framework, no build step.

const $ = (id) => document.getElementById(id);
const state = {
  token: sessionStorage.getItem('sluice-token') || '',
  status: null,
  /** GET /api/v1/series, kept up to date with ?since= (the points the server holds: 15 minutes). */
  series: null,
  seriesBusy: false,
  lastHistoryVersion: -1,
  abort: null,
};

function headers(json) {
  const h = {};
  if (state.token) h.authorization = `Bearer ${state.token}`;
  if (json) h['content-type'] = 'application/json';
  return h;
}

function askToken() {
  return new Promise((resolve) => {
    const d = $('token-dialog');
    $('token-input').value = state.token;
    d.onclose = () => {
      if (d.returnValue === 'ok') {
        state.token = $('token-input').value.trim();
        sessionStorage.setItem('sluice-token', state.token);
        resolve(true);
      } else resolve(false);
    };
    d.showModal();
  });
}

function message(text, kind) {
  const m = $('message');
  m.textContent = text;
  m.className = `message ${kind || ''}`;
}

async function call(method, path, body) {
  for (let attempt = 0; attempt < 2; attempt++) {
    const r = await fetch(path, {
      method,
      headers: headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if ((r.status === 401 || r.status === 403) && attempt === 0 && (await askToken())) continue;
    const data = await r.json().catch(() => ({}));
    if (!r.ok)
      throw new Error(`${r.status} ${data.error ? `${data.error.code}: ${data.error.message}` : r.statusText}`);
    return data;
  }
  throw new Error('not authorised');
}

async function command(label, method, path, body, confirmText) {
  if (confirmText && !window.confirm(confirmText)) return;
  try {
    const s = await call(method, path, body);
    message(`${label}: done (version ${s.version})`, 'ok');
    if (s?.weights) render(s);
  } catch (e) {
    message(`${label} failed: ${e.message}`, 'error');
  }
}

// --- rendering -------------------------------------------------------------------------------

const fmtPct = (x) => `${+(x * 100).toFixed(2)}%`;
const fmtMs = (x) => (x >= 100 ? `${x.toFixed(0)} ms` : `${x.toFixed(1)} ms`);

function esc(s) {
  return String(s).replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c],
  );
}

// --- the timeline: both pools over the last 15 minutes -------------------------------------------

const CW = 720;
const CH = 120;
const PAD = { l: 52, r: 8, t: 8, b: 18 };
const clockTime = (t) => new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });

async function refreshSeries() {
  if (state.seriesBusy) return;
  state.seriesBusy = true;
  try {
    const cur = state.series;
    const last = cur ? Math.max(0, ...cur.pools.blue.at.slice(-1)) : 0;
    const d = await call('GET', `/api/v1/series${last ? `?since=${last}` : ''}`);
    if (!cur) state.series = d;
    else {
      for (const name of ['blue', 'green'])
        for (const k of Object.keys(d.pools[name])) cur.pools[name][k].push(...d.pools[name][k]);
      // A marker can be stamped after the last point asked from: it comes again; keep it once.
      const seen = new Set(cur.markers.map((m) => `${m.at} ${m.event} ${m.by}`));
      cur.markers.push(...d.markers.filter((m) => !seen.has(`${m.at} ${m.event} ${m.by}`)));
      Object.assign(cur, { now: d.now, thresholds: d.thresholds, intervalMs: d.intervalMs });
      // Keep the span the server keeps.
      const from = d.now - d.spanMs;
      for (const name of ['blue', 'green']) {
        const p = cur.pools[name];
        let n = 0;
        while (n < p.at.length && p.at[n] <= from) n++;
        if (n > 0) for (const k of Object.keys(p)) p[k].splice(0, n);
      }
      cur.markers = cur.markers.filter((m) => m.at > from);
    }
    renderTimeline();
  } catch {
    /* shown by the stream's state */
  } finally {
    state.seriesBusy = false;
  }
}

/** One chart: a line per pool against time, the threshold dashed, a line per marker. */
function timeChart(d, title, value, fmt, limit, from, to, testid) {
  const w = CW - PAD.l - PAD.r;
  const h = CH - PAD.t - PAD.b;
  const x = (t) => PAD.l + ((t - from) / Math.max(1, to - from)) * w;
  let max = limit ?? 0;
  const lines = {};
  for (const name of ['blue', 'green']) {
    const p = d.pools[name];
    const vals = p.at.map((_, i) => value(p, i));
    for (const v of vals) if (v > max) max = v;
    lines[name] = vals;
  }
  max = max > 0 ? max * 1.1 : 1;
  const y = (v) => PAD.t + h - (v / max) * h;
  let svg = '';
  for (let i = 0; i <= 2; i++) {
    const v = (max * i) / 2;
    svg += `<line class="grid" x1="${PAD.l}" x2="${CW - PAD.r}" y1="${y(v)}" y2="${y(v)}"/><text class="axis" x="${PAD.l - 4}" y="${y(v) + 4}" text-anchor="end">${esc(fmt(v))}</text>`;
  }
  for (let i = 0; i <= 4; i++) {
    const t = from + ((to - from) * i) / 4;
    svg += `<text class="axis" x="${x(t)}" y="${CH - 4}" text-anchor="${i === 0 ? 'start' : i === 4 ? 'end' : 'middle'}">${clockTime(t)}</text>`;
  }
  if (limit !== undefined)
    svg += `<line class="limit" x1="${PAD.l}" x2="${CW - PAD.r}" y1="${y(limit)}" y2="${y(limit)}"/><text class="limit-label" x="${CW - PAD.r - 2}" y="${y(limit) - 3}" text-anchor="end">limit ${esc(fmt(limit))}</text>`;
  d.markers.forEach((m, i) => {
    if (m.at < from) return;
    svg += `<g class="marker ev-${esc(m.event)}"><line x1="${x(m.at)}" x2="${x(m.at)}" y1="${PAD.t}" y2="${PAD.t + h}"/><text x="${x(m.at) + 2}" y="${PAD.t + 9}">${i + 1}</text><title>${esc(`${clockTime(m.at)} ${m.event.replace(/_/g, ' ')}: ${m.reason || ''}`)}</title></g>`;
  });
  for (const name of ['blue', 'green']) {
    const p = d.pools[name];
    const pts = lines[name].map((v, i) => `${i ? 'L' : 'M'}${x(p.at[i]).toFixed(1)},${y(v).toFixed(1)}`).join('');
    if (pts) svg += `<path class="series ${name}" d="${pts}"/>`;
  }
  return `<figure class="tchart" data-testid="${testid}"><figcaption>${esc(title)}</figcaption><svg viewBox="0 0 ${CW} ${CH}" role="img" aria-label="${esc(title)}">${svg}</svg></figure>`;
}

function renderTimeline() {
  const d = state.series;
  if (!d) return;
  const first = d.pools.blue.at[0];
  const to = d.now;
  // At least a minute wide, so a fresh page is not a few pixels of line.
  const from = Math.min(to - 60_000, first ?? to);
  const secs = d.intervalMs / 1000;
  const rate = (p, i) => p.requests[i] / secs;
  const err = (p, i) => (p.requests[i] ? p.errors[i] / p.requests[i] : 0);
  const p95 = (p, i) => p.p95Ms[i];
  $('charts').innerHTML =
    timeChart(d, 'requests / s', rate, (v) => v.toFixed(v < 10 ? 1 : 0), undefined, from, to, 'chart-rate') +
    timeChart(d, 'error rate', err, fmtPct, d.thresholds.maxErrorRate, from, to, 'chart-errors') +
    timeChart(d, 'p95 latency', p95, fmtMs, d.thresholds.maxP95Ms, from, to, 'chart-p95');
  const n = d.pools.blue.at.length;
  $('timeline-span').textContent = n
    ? `${clockTime(from)} – ${clockTime(to)} · ${n} points per pool · blue and green`
    : 'no traffic measured yet';
  $('markers').innerHTML = d.markers
    .map(
      (m, i) =>
        `<li class="ev-${esc(m.event)}" data-testid="marker"><b>${i + 1}</b> ${clockTime(m.at)} <span class="ev">${esc(m.event.replace(/_/g, ' '))}</span> by ${esc(m.by)} (blue ${m.weights.blue}% · green ${m.weights.green}%)${m.reason ? `: ${esc(m.reason)}` : ''}</li>`,
    )
    .reverse()
    .slice(0, 12)
    .join('');
}

function renderPool(name, s) {
  const p = s.pools[name];
  if (!p) return;
  const wnd = p.window;
  const secs = (s.windowMs || 10000) / 1000;
  const rate = wnd.requests / secs;
  const role = s.stable === name ? 'stable' : 'canary';
  const bad = wnd.errorRate > (s.thresholds ? s.thresholds.maxErrorRate : 0.01);
  $(`pool-${name}`).innerHTML = `
    <h2><span class="dot ${name}"></span>${name} <span class="role" data-testid="role-${name}">${role}</span> <span>${s.weights[name]}%</span></h2>
    <div class="stats">
      <div class="stat"><div class="v" data-testid="rate-${name}">${rate.toFixed(1)}</div><div class="k">req/s (last ${secs}s)</div></div>
      <div class="stat ${bad ? 'bad' : ''}"><div class="v" data-testid="errors-${name}">${fmtPct(wnd.errorRate)}</div><div class="k">errors (${wnd.errors}/${wnd.requests})</div></div>
      <div class="stat"><div class="v" data-testid="p95-${name}">${wnd.requests ? fmtMs(wnd.p95Ms) : '–'}</div><div class="k">p95 (p50 ${fmtMs(wnd.p50Ms)}, p99 ${fmtMs(wnd.p99Ms)})</div></div>
    </div>
    <ul class="endpoints">${p.endpoints.map((e) => `<li class="${e.healthy ? '' : 'down'}" data-testid="endpoint">${esc(e.url)}${e.healthy ? '' : ' — out of rotation'}</li>`).join('')}</ul>`;
}

function render(s) {
  state.status = s;
  $('version').textContent = s.version;
  $('stable').textContent = s.stable;
  $('canary').textContent = s.canary;
  const phase = s.rollout.phase;
  $('phase').textContent = phase.replace('_', ' ');
  $('phase').className = `badge ${phase}`;
  for (const name of ['blue', 'green']) {
    const w = s.weights[name];
    $(`bar-${name}`).style.width = `${w}%`;
    $(`w-${name}`).textContent = w >= 6 ? `${name} ${w}%` : '';
  }
  $('steps').innerHTML = s.rollout.steps
    .map((w, i) => {
      const active = phase === 'progressing' || phase === 'paused';
      const cls = active ? (i < s.rollout.stepIndex ? 'done' : i === s.rollout.stepIndex ? 'current' : '') : '';
      return `<span class="step ${cls}">${w}%</span>`;
    })
    .join('→');
  const ramp = s.rollout.rampDown;
  $('reason').textContent =
    (ramp
      ? `ramping down: ${ramp.weight}% → ${ramp.next}% in ${Math.ceil(ramp.nextInMs / 1000)} s (from ${ramp.from}% over ${+(ramp.over / 1000).toFixed(1)} s; reason: ${ramp.reason})`
      : s.rollout.reason) ||
    (s.rollout.dryRun && phase === 'progressing'
      ? `dry run${s.rollout.wouldRollBack ? ` — would roll back: ${s.rollout.wouldRollBack}` : ': no rollback so far at this step'}`
      : '');
  $('reason').className = `reason ${phase === 'rolled_back' ? 'bad' : ''}`;
  const a = s.rollout.analysis;
  $('analysis').textContent = a?.reason ? `analysis: ${a.verdict} — ${a.reason}` : '';
  const can = {
    start: ['idle', 'promoted', 'rolled_back'],
    pause: ['progressing'],
    resume: ['paused'],
    promote: ['idle', 'progressing', 'paused'],
  };
  for (const [k, phases] of Object.entries(can)) $(`btn-${k}`).disabled = !phases.includes(phase);
  $('btn-weight').disabled = false;
  $('btn-abort').disabled = !(phase === 'progressing' || phase === 'paused' || s.weights[s.canary] > 0);
  if (document.activeElement !== $('weight-input')) $('weight-input').value = s.weights[s.canary];
  renderPool('blue', s);
  renderPool('green', s);
  renderMembers(s);
  const m = s.maintenance;
  $('maintenance').hidden = !m?.enabled;
  if (m?.enabled)
    $('maintenance').textContent =
      `Maintenance mode since ${new Date(m.since).toLocaleTimeString()}: clients get 503 (Retry-After ${Math.ceil(m.retryAfter / 1000)} s)${m.allowFrom.length ? `, except ${m.allowFrom.join(', ')}` : ''}${m.message ? ` — ${m.message}` : ''}`;
  renderShadow(s);
  renderFaults(s.faults);
}

/** A shadow under way (its numbers so far), else how the last one ended. */
function renderShadow(s) {
  const sh = s.shadow;
  const el = $('shadow');
  el.hidden = !sh || (!sh.active && !sh.last);
  if (el.hidden) return;
  if (sh.active) {
    const left =
      sh.endsAt === null ? 'until stopped' : `${Math.max(0, Math.ceil((sh.endsAt - Date.now()) / 1000))} s left`;
    const r = sh.run;
    el.textContent = `Shadow: ${sh.percent}% of ${s.stable}'s requests mirrored to ${s.canary} (${left})${r ? ` — ${r.pairs} pairs, ${r.mismatches} mismatched, ${r.dropped} dropped` : ''}`;
    el.className = 'banner shadow';
    return;
  }
  el.textContent = `Last shadow (${new Date(sh.last.at).toLocaleTimeString()}): ${sh.last.reason}`;
  el.className = `banner shadow ${sh.last.verdict === 'shadow_failed' ? 'bad' : ''}`;
}

/** Fault injection (a rehearsal): shown while set, so nobody mistakes its failures for the release's. */
function renderFaults(f) {
  const el = $('faults');
  el.hidden = !f;
  if (!f) return;
  const parts = [];
  if (f.abortPercent > 0) parts.push(`abort ${f.abortPercent} % (${f.abortStatus})`);
  if (f.delayPercent > 0) parts.push(`delay ${f.delayPercent} % ${f.delayMs} ms`);
  const what = `${f.pool} ${parts.join(', ')}`;
  el.classList.toggle('inactive', !f.active);
  el.textContent = f.active
    ? `Fault injection on: ${what} — since ${new Date(f.since).toLocaleTimeString()} by ${f.by}; injected ${f.injected.aborts} aborts, ${f.injected.delays} delays`
    : `Fault injection set but not applied (faults.enabled is false here): ${what}`;
}

/** The fleet (instances sharing this rollout through Redis) and this instance's worker threads. */
function renderMembers(s) {
  const el = $('members');
  const f = s.fleet;
  const workers = s.workers || [];
  el.hidden = !f && workers.length < 2;
  if (el.hidden) return;
  let html = '';
  if (f) {
    const link = f.connected
      ? '<span class="badge promoted" data-testid="fleet-link">connected</span>'
      : `<span class="badge rolled_back" data-testid="fleet-link">Redis unreachable since ${esc(new Date(f.disconnectedSince || 0).toLocaleTimeString())}</span>`;
    const sum = f.summary;
    const rows = (sum ? sum.members : [])
      .map((m) => {
        const g = m.pools ? m.pools.green : { requests: 0, errors: 0 };
        const age = ((sum.at - m.lastSnapshotAt) / 1000).toFixed(1);
        const tags = `${m.id === sum.leader ? ' <b>leader</b>' : ''}${m.id === f.instance ? ' (this one)' : ''}`;
        return `<tr data-testid="fleet-member"><td>${esc(m.id)}${tags}</td><td>${m.requests}</td><td>${m.errors}</td><td>${g.errors}/${g.requests}</td><td>${age} s</td></tr>`;
      })
      .join('');
    html += `<div class="row between"><h2>Fleet ${esc(f.name)}</h2>${link}</div>
      <p class="meta" data-testid="fleet-self">this instance: ${esc(f.instance)}, ${f.leader ? 'leader' : 'follower'} (epoch ${f.epoch})${f.pendingRollback ? ' — <b>rollback pending: written when Redis returns</b>' : ''}</p>
      <table class="history"><thead><tr><th>instance</th><th>requests</th><th>errors</th><th>green errors</th><th>last snapshot</th></tr></thead>
      <tbody>${rows || '<tr><td colspan="5">no verdict from the leader yet</td></tr>'}</tbody></table>`;
  }
  if (workers.length > 1)
    html += `<h2>Workers</h2><ul class="workers" data-testid="workers">${workers
      .map(
        (w) =>
          `<li class="${w.state === 'running' ? '' : 'down'}" data-testid="worker">${esc(w.id)} ${esc(w.state)} · ${w.inflight} in flight · ${w.requests} requests${w.restarts ? ` · ${w.restarts} restarts` : ''}</li>`,
      )
      .join('')}</ul>`;
  el.innerHTML = html;
}

async function refreshHistory(version) {
  if (version === state.lastHistoryVersion) return;
  state.lastHistoryVersion = version;
  try {
    const { history } = await call('GET', '/api/v1/history');
    $('history').innerHTML = history
      .slice(0, 50)
      .map(
        (e) =>
          `<tr class="ev-${esc(e.event)}"><td>${new Date(e.at).toLocaleTimeString()}</td><td>${esc(e.event.replace('_', ' '))}</td><td>${esc(e.by)}</td><td>${e.weights.blue}/${e.weights.green}</td><td>${esc(e.reason || '')}</td></tr>`,
      )
      .join('');
  } catch {
    /* shown by the stream's state */
  }
}

// --- the event stream ------------------------------------------------------------------------

async function stream() {
  let delay = 500;
  for (;;) {
    const conn = $('conn');
    try {
      state.abort = new AbortController();
      const r = await fetch('/api/v1/events', { headers: headers(false), signal: state.abort.signal });
      if (r.status === 401 || r.status === 403) {
        conn.textContent = r.status === 401 ? 'token needed' : 'this token may not watch (403)';
        conn.className = 'conn down';
        message(
          r.status === 401
            ? 'This sluice needs an admin token: enter a viewer or operator token.'
            : 'This token is not allowed to read the status (403): use a viewer or operator token.',
          'error',
        );
        if (!(await askToken())) await new Promise((res) => setTimeout(res, 5000));
        continue;
      }
      if (r.status === 429) {
        const wait = Number(r.headers.get('retry-after')) || 10;
        conn.textContent = `too many failed tokens: retrying in ${wait} s`;
        conn.className = 'conn down';
        message(
          `Too many failed tokens from this address (429): sluice waits ${wait} s before it checks another. A valid token still works after that.`,
          'error',
        );
        await new Promise((res) => setTimeout(res, wait * 1000));
        continue;
      }
      if (!r.ok || !r.body) throw new Error(String(r.status));
      conn.textContent = 'live';
      conn.className = 'conn live';
      delay = 500;
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        for (let end = buf.indexOf('\n\n'); end >= 0; end = buf.indexOf('\n\n')) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const data = block
            .split('\n')
            .filter((l) => l.startsWith('data: '))
            .map((l) => l.slice(6))
            .join('\n');
          if (!data || !/^event: status$/m.test(block)) continue;
          const s = JSON.parse(data);
          render(s);
          refreshSeries();
          refreshHistory(s.version);
        }
      }
    } catch {
      /* reconnect below */
    }
    conn.textContent = 'reconnecting…';
    conn.className = 'conn down';
    await new Promise((res) => setTimeout(res, delay));
    delay = Math.min(delay * 2, 10000);
  }
}

function wire() {
  $('btn-start').onclick = () => command('start', 'POST', '/api/v1/rollout/start', {});
  $('btn-pause').onclick = () => command('pause', 'POST', '/api/v1/rollout/pause', {});
  $('btn-resume').onclick = () => command('resume', 'POST', '/api/v1/rollout/resume', {});
  $('btn-promote').onclick = () =>
    command('promote', 'POST', '/api/v1/rollout/promote', {}, 'Promote the canary to 100% and make it stable?');
  $('btn-abort').onclick = () =>
    command('abort', 'POST', '/api/v1/rollout/abort', {}, 'Abort: send every client back to the stable pool?');
  $('btn-weight').onclick = () => {
    const s = state.status;
    const v = Number($('weight-input').value);
    if (!s || !Number.isFinite(v)) return;
    command('set weight', 'PUT', '/api/v1/weights', { weights: { [s.canary]: v }, expectedVersion: s.version });
  };
  $('token-btn').onclick = () => askToken().then((ok) => ok && state.abort?.abort());
}

wire();
stream();
