// The dashboard's charts: metrics.jsonl lines turned into points, and vega-lite specs compiled to
// vega and drawn with vega.View (vega-embed is not part of the project, and this is all it would do
// here). Each chart keeps its view and only swaps its dataset while the spec stays the same.
/* global window, vega, vegaLite */
(function () {
  'use strict';
  const PALETTE = ['#4c6ef5', '#e8590c', '#2f9e44', '#ae3ec9', '#1098ad', '#f08c00', '#d6336c', '#5c940d', '#495057', '#7950f2'];

  /**
   * The curves of every run: one series per run, and per process segment of a resumed run (its
   * wall clock restarts from 0, so wall_s going down starts a segment). Wall time is cumulative
   * over a run's segments.
   */
  const COUNTS = new Set(['tokens', 'samples']);

  function curves(runs) {
    const out = [];
    for (const run of runs) {
      const segs = [];
      let offset = 0;
      let last = 0;
      for (const s of run.steps) {
        if (segs.length === 0 || s.wall_s < last) {
          if (segs.length > 0) offset += last;
          segs.push([]);
        }
        last = s.wall_s;
        segs[segs.length - 1].push({ ...s, wall: offset + s.wall_s });
      }
      const wallAt = new Map([[0, 0]]);
      segs.forEach((seg, i) => {
        const series = segs.length > 1 ? `${run.name} · segment ${i + 1}` : run.name;
        for (const p of seg) {
          p.series = series;
          wallAt.set(p.step, p.wall);
        }
      });
      out.push({ run, points: segs.flat(), wallAt });
    }
    return out;
  }

  /** Chart id → title, y-axis title, and the points { step, wall, value, series }. */
  function chartData(runs) {
    const cs = curves(runs);
    const charts = new Map();
    const add = (id, title, yTitle, pts) => {
      const c = charts.get(id) ?? { id, title, yTitle, points: [] };
      c.points.push(...pts);
      charts.set(id, c);
    };
    const series = (c, field, scale = 1) => c.points.filter((p) => typeof p[field] === 'number').map((p) => ({ step: p.step, wall: p.wall, value: p[field] * scale, series: p.series }));
    for (const c of cs) add('loss', 'Training loss', 'loss', series(c, 'loss'));
    // `tokens` / `samples` of an evaluation count what it read: not a metric to plot.
    const evalNames = [...new Set(runs.flatMap((r) => r.evals.flatMap((e) => Object.keys(e.eval))))].filter((k) => !COUNTS.has(k)).sort();
    for (const name of evalNames) {
      for (const c of cs) {
        const pts = c.run.evals.filter((e) => typeof e.eval[name] === 'number').map((e) => ({
          // The evaluation before training (step 0) belongs to the first segment.
          step: e.step, wall: c.wallAt.get(e.step) ?? null, value: e.eval[name], series: (c.points.find((p) => p.step >= e.step) ?? c.points[c.points.length - 1])?.series ?? c.run.name,
        }));
        add(`eval:${name}`, `Evaluation: ${name}`, name, pts);
      }
    }
    for (const c of cs) add('lr', 'Learning rate', 'lr', series(c, 'lr'));
    const tokens = runs.some((r) => r.steps.some((s) => typeof s.tokens_per_s === 'number'));
    for (const c of cs) add('throughput', tokens ? 'Throughput (tokens/s)' : 'Throughput (samples/s)', tokens ? 'tokens/s' : 'samples/s', series(c, tokens ? 'tokens_per_s' : 'samples_per_s'));
    for (const c of cs) add('memory', 'Peak tensor memory (MiB)', 'MiB', series(c, 'peak_bytes', 1 / 2 ** 20));
    return [...charts.values()];
  }

  function spec(chart, o) {
    const names = [...new Set(chart.points.map((p) => p.series))];
    // One legend for every chart, in the page (dashboard.js), so that a chart keeps its width.
    const positive = chart.points.every((p) => p.value > 0);
    const few = chart.points.length <= 80 * Math.max(1, names.length);
    return {
      // 'pad': the plot is `width` wide and the axes and legend are added around it (resize: again on every
      // update, as the labels widen when the data arrives).
      width: o.width, height: 200, autosize: { type: 'pad', resize: true },
      data: { name: 'points' },
      transform: o.x === 'wall' ? [{ filter: 'isValid(datum.wall)' }] : [],
      mark: { type: 'line', point: few ? { size: 28, filled: true } : false, strokeWidth: 2, tooltip: true, clip: true },
      encoding: {
        x: { field: o.x, type: 'quantitative', title: o.x === 'wall' ? 'wall time (s)' : 'step', scale: { zero: false, nice: false, padding: 10 }, axis: o.x === 'step' ? { tickMinStep: 1, format: 'd' } : {} },
        y: { field: 'value', type: 'quantitative', title: chart.yTitle, axis: { tickCount: 6, labelOverlap: 'greedy' }, scale: o.log && positive ? { type: 'log', nice: false, padding: 10 } : { type: 'linear', zero: false, padding: 10 } },
        color: { field: 'series', type: 'nominal', scale: { domain: o.domain, range: PALETTE }, legend: null },
      },
      config: {
        view: { stroke: null }, font: 'system-ui, DejaVu Sans, sans-serif',
        axis: { gridColor: '#eceef2', domainColor: '#c3c8d2', tickColor: '#c3c8d2', labelColor: '#4b5262', titleColor: '#6b7385', titleFontWeight: 500, labelFontSize: 11 },
        legend: { labelColor: '#4b5262', symbolStrokeWidth: 3 },
      },
    };
  }

  /** Draws (or redraws) `chart` into `el`, reusing its view while the spec is unchanged. */
  async function draw(views, el, chart, o) {
    const s = spec(chart, { ...o, width: Math.max(240, el.clientWidth - 80) });
    const key = JSON.stringify(s);
    let entry = views.get(chart.id);
    if (!entry || entry.key !== key) {
      entry?.view.finalize();
      const view = new vega.View(vega.parse(vegaLite.compile(s).spec), { renderer: 'svg', container: el, hover: true });
      entry = { key, view };
      views.set(chart.id, entry);
    }
    await entry.view.data('points', chart.points).runAsync();
    el.dataset.points = String(chart.points.length);
  }

  window.oneloraCharts = { PALETTE, COUNTS, chartData, draw };
})();
