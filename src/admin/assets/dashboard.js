// sluice live page: reads /api/v1/events (SSE over fetch, so a bearer token can be sent), draws the
// split, the rollout, each pool's rate / error rate / p95 over the last minutes, endpoint health
// and the history, and sends commands. No framework, no build step.

const HISTORY_POINTS = 300; // samples kept per series (~5 minutes at one event a second)
const $ = (id) => document.getElementById(id);
const state = {
  token: sessionStorage.getItem('sluice-token') || '',
  status: null,
  series: { blue: [], green: [] },
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

function chart(points, key, cls, fmt) {
  const w = 240,
    h = 46;
  const vals = points.map((p) => p[key]);
  const max = Math.max(1e-9, ...vals);
  const step = points.length > 1 ? w / (HISTORY_POINTS - 1) : 0;
  const x0 = w - (points.length - 1) * step;
  const xy = vals.map((v, i) => [x0 + i * step, h - 2 - (v / max) * (h - 6)]);
  const line = xy.map(([x, y], i) => `${i ? 'L' : 'M'}${x.toFixed(1)},${y.toFixed(1)}`).join('');
  const area = xy.length ? `${line}L${xy[xy.length - 1][0].toFixed(1)},${h}L${xy[0][0].toFixed(1)},${h}Z` : '';
  const last = vals.length ? fmt(vals[vals.length - 1]) : '–';
  return `<div><div class="k">${key === 'rate' ? 'req/s' : key === 'err' ? 'error rate' : 'p95'} · max ${vals.length ? fmt(max) : '–'} · now ${last}</div>
    <svg class="chart ${cls}" viewBox="0 0 ${w} ${h}" preserveAspectRatio="none"><path class="area" d="${area}"/><path class="line" d="${line}"/></svg></div>`;
}

function esc(s) {
  return String(s).replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c],
  );
}

function renderPool(name, s) {
  const p = s.pools[name];
  if (!p) return;
  const wnd = p.window;
  const secs = (s.windowMs || 10000) / 1000;
  const rate = wnd.requests / secs;
  const series = state.series[name];
  const role = s.stable === name ? 'stable' : 'canary';
  const bad = wnd.errorRate > (s.thresholds ? s.thresholds.maxErrorRate : 0.01);
  $(`pool-${name}`).innerHTML = `
    <h2><span class="dot ${name}"></span>${name} <span class="role" data-testid="role-${name}">${role}</span> <span>${s.weights[name]}%</span></h2>
    <div class="stats">
      <div class="stat"><div class="v" data-testid="rate-${name}">${rate.toFixed(1)}</div><div class="k">req/s (last ${secs}s)</div></div>
      <div class="stat ${bad ? 'bad' : ''}"><div class="v" data-testid="errors-${name}">${fmtPct(wnd.errorRate)}</div><div class="k">errors (${wnd.errors}/${wnd.requests})</div></div>
      <div class="stat"><div class="v" data-testid="p95-${name}">${wnd.requests ? fmtMs(wnd.p95Ms) : '–'}</div><div class="k">p95 (p50 ${fmtMs(wnd.p50Ms)}, p99 ${fmtMs(wnd.p99Ms)})</div></div>
    </div>
    <div class="charts">${chart(series, 'rate', name, (v) => v.toFixed(1))}${chart(series, 'err', 'bad', fmtPct)}${chart(series, 'p95', name, fmtMs)}</div>
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
  $('reason').textContent =
    s.rollout.reason ||
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
  renderFaults(s.faults);
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

function sample(s) {
  const secs = (s.windowMs || 10000) / 1000;
  for (const name of ['blue', 'green']) {
    const w = s.pools[name].window;
    const arr = state.series[name];
    arr.push({ rate: w.requests / secs, err: w.errorRate, p95: w.p95Ms });
    if (arr.length > HISTORY_POINTS) arr.shift();
  }
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
        conn.textContent = 'token needed';
        conn.className = 'conn down';
        if (!(await askToken())) await new Promise((res) => setTimeout(res, 5000));
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
          sample(s);
          render(s);
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
