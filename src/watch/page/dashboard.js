// The dashboard page: one server-sent event stream (/api/events) that opens with a snapshot of
// everything so far and then carries what the runs append ('run') and the worker table ('group'),
// so the page updates without reloading and works when opened in the middle of a run.
/* global window, document, requestAnimationFrame, CSS, setInterval, EventSource */
(function () {
  'use strict';
  const { PALETTE, COUNTS, chartData, draw } = window.oneloraCharts;
  const $ = (id) => document.getElementById(id);
  const state = { title: '', runs: [], group: null, clockOffset: 0, x: 'step', log: false, ended: false };
  const views = new Map();
  window.onelora = { state, views, updates: 0 };

  const fmt = (v, digits = 4) => (v === null || v === undefined || Number.isNaN(v) ? '–' : Math.abs(v) >= 1000 ? Math.round(v).toLocaleString('en') : Number(v.toPrecision(digits)).toString());
  const el = (tag, attrs = {}, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === 'class') e.className = v;
      else if (k.startsWith('data-')) e.setAttribute(k, v);
      else e[k] = v;
    }
    e.append(...kids.filter((k) => k !== null && k !== undefined));
    return e;
  };
  const seriesNames = () => [...new Set(chartData(state.runs).flatMap((c) => c.points.map((p) => p.series)))];

  let pending = null;
  /** Coalesces bursts of events into one redraw per frame. */
  function schedule() {
    pending ??= requestAnimationFrame(() => {
      pending = null;
      void render();
    });
  }

  async function render() {
    $('title').textContent = state.title;
    renderStatus();
    renderStats();
    renderGroup();
    renderRuns();
    const charts = chartData(state.runs);
    const domain = seriesNames();
    const legend = $('legend');
    legend.hidden = domain.length < 2;
    legend.replaceChildren(...domain.map((name, i) => el('span', { class: 'entry', 'data-series': name }, el('span', { class: 'swatch', style: `background:${PALETTE[i % PALETTE.length]}` }), name)));
    const box = $('charts');
    for (const c of charts) {
      let card = box.querySelector(`[data-chart="${CSS.escape(c.id)}"]`);
      if (!card) {
        card = el('div', { class: 'card', 'data-chart': c.id }, el('h2', {}), el('div', { class: 'chart' }));
      }
      // In chartData's order, whenever a chart appears (moving a node keeps its vega view).
      box.append(card);
      card.querySelector('h2').textContent = c.title;
      await draw(views, card.querySelector('.chart'), c, { x: state.x, log: state.log, domain });
    }
    window.onelora.updates++;
    document.body.dataset.updates = String(window.onelora.updates);
  }

  function renderStatus() {
    const s = $('status');
    const finished = state.runs.length > 0 && state.runs.every((r) => r.summary);
    const [text, cls] = finished ? ['finished', 'finished'] : state.ended ? ['run ended', 'ended'] : state.disconnected ? ['disconnected', 'disconnected'] : ['live', 'live'];
    s.textContent = text;
    s.className = `pill ${cls}`;
  }

  function renderStats() {
    const run = state.runs[0];
    const box = $('stats');
    box.replaceChildren();
    if (!run) return;
    const last = run.steps[run.steps.length - 1];
    const evalLast = run.evals[run.evals.length - 1];
    const stat = (k, v) => box.append(el('div', { class: 'stat' }, el('div', { class: 'k' }, k), el('div', { class: 'v' }, v)));
    stat('step', last ? String(last.step) + (run.summary ? ` of ${run.summary.total_steps}` : '') : '–');
    stat('loss', fmt(last?.loss));
    if (evalLast) for (const [k, v] of Object.entries(evalLast.eval).filter(([k]) => !COUNTS.has(k)).slice(0, 2)) stat(`eval ${k}`, fmt(v));
    if (last?.tokens_per_s !== undefined) stat('tokens/s', fmt(last.tokens_per_s, 3));
    else if (last?.samples_per_s !== undefined) stat('samples/s', fmt(last.samples_per_s, 3));
    stat('peak memory', last ? `${fmt(last.peak_bytes / 2 ** 20, 3)} MiB` : '–');
    stat('elapsed', last ? `${fmt(run.steps.reduce((a, s, i, all) => (i > 0 && s.wall_s < all[i - 1].wall_s ? a + all[i - 1].wall_s : a), 0) + last.wall_s, 3)} s` : '–');
    if (state.runs.length > 1) stat('runs', String(state.runs.length));
  }

  function renderGroup() {
    const g = state.group;
    $('group').hidden = !g;
    if (!g) return;
    $('generation').textContent = `· ${g.state} · generation ${g.generation}`;
    const live = state.runs[0];
    const slowest = live?.steps[live.steps.length - 1]?.straggler?.rank;
    const now = Date.now() - state.clockOffset;
    const rows = g.workers.map((w) => el('tr', { 'data-rank': String(w.rank), 'data-state': w.state, 'data-restarts': String(w.restarts), class: w.rank === slowest ? 'slowest' : '' },
      el('td', {}, String(w.rank), w.rank === slowest ? el('span', { class: 'badge', title: 'most data wait + compute in the last step' }, 'slowest') : null),
      el('td', {}, w.host), el('td', {}, String(w.pid)), el('td', {}, w.backend),
      el('td', {}, el('span', { class: `state ${w.state}` }, w.state)),
      el('td', {}, w.heartbeat_ms ? `${fmt(Math.max(0, now - w.heartbeat_ms) / 1000, 2)} s ago` : '–'),
      el('td', {}, String(w.restarts)), el('td', {}, w.last_step === null ? '–' : String(w.last_step)),
      el('td', {}, fmt(w.compute_s, 3)), el('td', {}, fmt(w.allreduce_s, 3)), el('td', {}, fmt(w.wait_s, 3))));
    $('workers').tBodies[0].replaceChildren(...rows);
    $('generations').replaceChildren(...g.generations.map((x) => el('li', {}, `generation ${x.generation}: ${x.workers} workers from step ${x.step} (${x.from}) at ${fmt(x.at_s, 3)} s`)));
    $('failures').replaceChildren(...(g.failures.length ? g.failures.map((f) => el('li', { class: 'failure' }, `${fmt(f.at_s, 3)} s, generation ${f.generation}: ${f.reason}`)) : [el('li', { class: 'empty' }, 'none')]));
  }

  function renderRuns() {
    const domain = seriesNames();
    const colour = (name) => PALETTE[Math.max(0, domain.findIndex((d) => d === name || d.startsWith(`${name} · `))) % PALETTE.length];
    $('runs').replaceChildren(...state.runs.map((r) => {
      const s = r.summary;
      const kv = el('dl', { class: 'kv' },
        el('dt', {}, 'directory'), el('dd', {}, r.dir),
        el('dt', {}, 'status'), el('dd', {}, s ? `finished: ${s.steps} steps in ${fmt(s.wall_s, 3)} s, final loss ${fmt(s.final_loss)}` : `${r.steps.length} steps logged`),
        ...(s?.method ? [el('dt', {}, 'method'), el('dd', {}, `${s.method}, ${Number(s.trainable).toLocaleString('en')} trainable`)] : []),
        ...(s?.best ? [el('dt', {}, 'best'), el('dd', {}, `${s.best.metric} ${fmt(s.best.value)} at step ${s.best.step}`)] : []),
        el('dt', {}, 'checkpoints'), el('dd', { 'data-checkpoints': r.checkpoints.join(' ') }, r.checkpoints.length ? r.checkpoints.map((c) => (c === r.latest ? `${c} (latest)` : c)).join(', ') : 'none yet'));
      const open = document.querySelector(`[data-run="${CSS.escape(r.id)}"] details`)?.open ?? false;
      return el('div', { class: 'card', 'data-run': r.id },
        el('h2', {}, el('span', { class: 'swatch', style: '' }), r.name), kv,
        el('details', { open }, el('summary', {}, 'config.yaml'), el('pre', {}, r.config ?? '(not written yet)')));
    }));
    for (const r of state.runs) {
      const sw = document.querySelector(`[data-run="${CSS.escape(r.id)}"] .swatch`);
      if (sw) sw.style.background = colour(r.name);
    }
  }

  function applyUpdate(u) {
    if (u.reset) {
      const i = state.runs.findIndex((r) => r.id === u.id);
      if (i >= 0) state.runs[i] = u.run;
      return;
    }
    const r = state.runs.find((x) => x.id === u.id);
    if (!r) return;
    r.steps.push(...u.steps);
    r.evals.push(...u.evals);
    Object.assign(r, { config: u.config, checkpoints: u.checkpoints, latest: u.latest, summary: u.summary });
  }

  function setGroup(g) {
    state.group = g;
    state.clockOffset = g ? Date.now() - g.now : 0;
  }

  const es = new EventSource('/api/events');
  es.addEventListener('snapshot', (e) => {
    const s = JSON.parse(e.data);
    Object.assign(state, { title: s.title, runs: s.runs, disconnected: false });
    setGroup(s.group);
    schedule();
  });
  es.addEventListener('run', (e) => {
    applyUpdate(JSON.parse(e.data));
    schedule();
  });
  es.addEventListener('group', (e) => {
    setGroup(JSON.parse(e.data));
    schedule();
  });
  es.addEventListener('end', () => {
    state.ended = true;
    es.close();
    schedule();
  });
  es.onerror = () => {
    state.disconnected = true;
    schedule();
  };
  // Heartbeat ages move on between events.
  setInterval(() => state.group && renderGroup(), 1000);

  for (const b of document.querySelectorAll('.toggle button')) {
    b.addEventListener('click', () => {
      state.x = b.dataset.x;
      for (const o of document.querySelectorAll('.toggle button')) o.classList.toggle('on', o === b);
      schedule();
    });
  }
  $('log-scale').addEventListener('change', (e) => {
    state.log = e.target.checked;
    schedule();
  });
})();
