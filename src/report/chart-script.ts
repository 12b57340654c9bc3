// The script inside the report page: draws each prepared chart (report-input.ts) with Observable
// Plot, which the page carries inline together with d3. Kept as plain browser JavaScript in a
// string: it runs in the page, not in this program, and must not depend on how the TypeScript
// around it is compiled. When every chart is drawn it sets <body data-charts="N">; a failure is
// shown in the page and in data-charts-error, so a broken report is visible, not blank.

export const CHART_SCRIPT = String.raw`
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('shrink-report-data').textContent);
  var Plot = window.Plot;

  function labelMargin(rows, key) {
    var longest = 0;
    rows.forEach(function (r) { longest = Math.max(longest, String(r[key]).length); });
    return Math.min(320, 12 + longest * 6.5);
  }
  function fixed(digits) { return function (v) { return Number.isFinite(v) ? v.toFixed(digits) : ''; }; }

  // One horizontal bar per row, with a value label at the end of each bar. Bars for models get a
  // colour each (the same model keeps its colour across charts); bars for layers or outputs share one.
  function bars(spec, width, x, y, label, xOptions) {
    var rows = spec.rows;
    var labelWidth = 0;
    rows.forEach(function (r) { labelWidth = Math.max(labelWidth, String(label(r)).length); });
    var perModel = y === 'model';
    var known = rows.every(function (r) { return data.models.indexOf(r[y]) >= 0; });
    return Plot.plot({
      width: width,
      marginLeft: labelMargin(rows, y),
      marginRight: 16 + labelWidth * 6.5,
      height: 40 + rows.length * 28,
      x: Object.assign({ grid: true, label: null }, xOptions || {}),
      y: { label: null, domain: rows.map(function (r) { return r[y]; }) },
      color: perModel ? (known ? { type: 'categorical', domain: data.models } : { type: 'categorical' }) : undefined,
      marks: [
        Plot.barX(rows, { x: x, y: y, fill: perModel ? y : '#4e79a7', title: function (r) { return r[y] + ': ' + r[x]; } }),
        Plot.text(rows, { x: x, y: y, text: label, textAnchor: 'start', dx: 4 }),
        Plot.ruleX([0]),
      ],
    });
  }

  var draw = {
    size: function (spec, width) { return bars(spec, width, 'mib', 'model', function (r) { return r.mib.toFixed(2) + ' MiB'; }); },
    memory: function (spec, width) { return bars(spec, width, 'mib', 'model', function (r) { return r.mib.toFixed(1) + ' MiB'; }); },
    throughput: function (spec, width) {
      return bars(spec, width, 'value', 'model', function (r) { return r.value.toFixed(1) + '/s (' + r.ratio.toFixed(2) + 'x)'; });
    },
    accuracy: function (spec, width) {
      return bars(spec, width, 'accuracy', 'model', function (r) { return (100 * r.accuracy).toFixed(2) + '%'; }, { domain: [0, 1], tickFormat: '%' });
    },
    fidelity: function (spec, width) {
      return bars(spec, width, 'sqnr_db', 'output', function (r) { return 'cos ' + fixed(6)(r.cosine); });
    },
    latency: function (spec, width) {
      var models = data.models;
      return Plot.plot({
        width: width,
        marginLeft: labelMargin(spec.rows, 'model'),
        height: 50 + models.length * 48,
        x: { grid: true, label: 'ms' },
        y: { label: null, domain: models },
        color: { type: 'categorical', domain: models },
        marks: [
          Plot.boxX(spec.rows, { x: 'ms', y: 'model', fill: 'model', fillOpacity: 0.35 }),
          Plot.dot(spec.rows, { x: 'ms', y: 'model', r: 2, fill: 'model', ariaDescription: 'timed runs', title: function (r) { return 'run ' + r.run + ': ' + r.ms.toFixed(2) + ' ms'; } }),
        ],
      });
    },
    'layer-error': function (spec, width) {
      return bars(spec, width, 'db', 'layer', function (r) { return r.db >= 150 && spec.axes && spec.axes.db === 'isolated' ? 'exact' : r.db.toFixed(1) + ' dB'; });
    },
    // A search's candidates: quality against size and against speed-up, coloured by where each stands.
    front: function (spec, width) {
      var statuses = ['chosen', 'Pareto front', 'within budget', 'outside budget'];
      var panels = [{ x: 'size', label: 'size, share of the input' }, { x: 'speedup', label: 'speed-up over the input' }];
      var holder = document.createElement('div');
      holder.className = 'panels';
      var panelWidth = Math.max(280, Math.floor((width - 8) / 2));
      panels.forEach(function (p) {
        var rows = spec.rows.filter(function (r) { return r[p.x] !== undefined; });
        holder.appendChild(Plot.plot({
          width: panelWidth,
          height: 300,
          marginLeft: 56,
          marginRight: 40,
          inset: 36,
          grid: true,
          x: { label: p.label },
          y: { label: spec.axes.quality },
          color: { type: 'categorical', domain: statuses, range: ['#e15759', '#4e79a7', '#76b7b2', '#bab0ac'], legend: true },
          marks: [
            Plot.dot(rows, { x: p.x, y: 'quality', fill: 'status', r: 6, ariaDescription: 'candidates', title: function (r) {
              return r.candidate + ' (' + r.status + '): ' + r.quality.toPrecision(4) + ', ' + r.size.toFixed(3) + 'x size' + (r.speedup !== undefined ? ', ' + r.speedup.toFixed(2) + 'x speed' : '');
            } }),
            Plot.text(rows, { x: p.x, y: 'quality', text: 'candidate', dy: -12, fontSize: 11 }),
          ],
        }));
      });
      return holder;
    },
    // Quality against size and against latency (two panels side by side), or latency against size.
    tradeoff: function (spec, width) {
      var models = data.models;
      var rows = spec.rows;
      var rated = rows.filter(function (r) { return r.quality !== undefined; });
      var timed = rows.filter(function (r) { return r.ms !== undefined; });
      var panels = rated.length > 0
        ? [{ rows: rated, x: 'mib', xLabel: 'size, MiB', y: 'quality' }].concat(timed.length > 0 ? [{ rows: rated.filter(function (r) { return r.ms !== undefined; }), x: 'ms', xLabel: 'median latency, ms', y: 'quality' }] : [])
        : [{ rows: timed, x: 'mib', xLabel: 'size, MiB', y: 'ms' }];
      var yLabel = function (y) { return y === 'ms' ? 'median latency, ms' : spec.axes.quality; };
      var holder = document.createElement('div');
      holder.className = 'panels';
      var panelWidth = Math.max(280, Math.floor((width - 8 * (panels.length - 1)) / panels.length));
      panels.forEach(function (p) {
        var percent = p.y === 'quality' && spec.axes.quality === 'accuracy';
        holder.appendChild(Plot.plot({
          width: panelWidth,
          height: 300,
          marginLeft: 56,
          marginRight: 40,
          inset: 36,
          grid: true,
          x: { label: p.xLabel, zero: p.x === 'mib' },
          y: { label: yLabel(p.y), tickFormat: percent ? '.2%' : undefined },
          color: { type: 'categorical', domain: models },
          marks: [
            Plot.dot(p.rows, { x: p.x, y: p.y, fill: 'model', r: 6, ariaDescription: 'models', title: function (r) {
              return r.model + ': ' + r.mib.toFixed(2) + ' MiB' + (r.ms !== undefined ? ', ' + r.ms.toFixed(2) + ' ms' : '') +
                (r.quality !== undefined ? ', ' + (percent ? (100 * r.quality).toFixed(2) + '%' : r.quality.toFixed(1)) : '') +
                (r.cosine !== undefined ? ', cosine ' + r.cosine.toFixed(6) : '');
            } }),
            Plot.text(p.rows, { x: p.x, y: p.y, text: 'model', dy: -12, fontSize: 11 }),
          ],
        }));
      });
      return holder;
    },
    // Stacked bars: bytes per op type, coloured by element type; one bar per model within each op type.
    'size-by-op': function (spec, width) {
      var models = data.models;
      var ops = [];
      var total = {};
      spec.rows.forEach(function (r) {
        if (ops.indexOf(r.op) < 0) ops.push(r.op);
        total[r.op] = Math.max(total[r.op] || 0, r.kib);
      });
      ops.sort(function (a, b) { return a === 'other' ? 1 : b === 'other' ? -1 : total[b] - total[a]; });
      var dtypes = [];
      spec.rows.forEach(function (r) { if (dtypes.indexOf(r.dtype) < 0) dtypes.push(r.dtype); });
      var title = function (r) { return r.model + ' ' + r.op + ' ' + r.dtype + ': ' + r.kib.toFixed(1) + ' KiB'; };
      if (models.length === 1) {
        return Plot.plot({
          width: width,
          marginLeft: labelMargin(spec.rows, 'op'),
          height: 60 + ops.length * 26,
          x: { grid: true, label: 'KiB' },
          y: { label: null, domain: ops },
          color: { type: 'categorical', domain: dtypes, legend: true },
          marks: [Plot.barX(spec.rows, { x: 'kib', y: 'op', fill: 'dtype', title: title }), Plot.ruleX([0])],
        });
      }
      return Plot.plot({
        width: width,
        marginLeft: labelMargin(spec.rows, 'op') + 16,
        marginRight: labelMargin(spec.rows, 'model'),
        height: 60 + ops.length * (models.length * 14 + 10),
        x: { grid: true, label: 'KiB' },
        y: { label: null, domain: models, axis: 'right' },
        fy: { label: null, domain: ops, axis: 'left' },
        color: { type: 'categorical', domain: dtypes, legend: true },
        marks: [
          Plot.barX(spec.rows, { x: 'kib', y: 'model', fy: 'op', fill: 'dtype', title: title }),
          Plot.ruleX([0]),
        ],
      });
    },
    // One line per series along network order; single points where neighbours are exact (not drawn).
    'layer-sqnr': function (spec, width) {
      var series = [];
      spec.rows.forEach(function (r) { if (series.indexOf(r.series) < 0) series.push(r.series); });
      var lines = spec.rows.filter(function (r) { return r.series !== 'made by the layer alone'; });
      var alone = spec.rows.filter(function (r) { return r.series === 'made by the layer alone'; });
      return Plot.plot({
        width: width,
        height: 320,
        grid: true,
        x: { label: 'layer, in network order' },
        y: { label: 'SQNR, dB' },
        color: { type: 'categorical', domain: series, legend: true },
        marks: [
          Plot.lineY(lines, { x: 'position', y: 'db', stroke: 'series', strokeWidth: 1.5 }),
          Plot.dot(alone, { x: 'position', y: 'db', fill: 'series', r: 2.5, ariaDescription: 'isolated layers' }),
          Plot.tip(spec.rows, Plot.pointerX({ x: 'position', y: 'db', title: function (r) { return r.layer + '\n' + r.series + ': ' + r.db.toFixed(1) + ' dB'; } })),
        ],
      });
    },
    'layer-bytes': function (spec, width) {
      var models = data.models;
      var layers = [];
      var largest = {};
      spec.rows.forEach(function (r) {
        if (layers.indexOf(r.layer) < 0) layers.push(r.layer);
        largest[r.layer] = Math.max(largest[r.layer] || 0, r.kib);
      });
      layers.sort(function (a, b) { return largest[b] - largest[a]; });
      if (models.length === 1) {
        var rows = spec.rows.slice().sort(function (a, b) { return b.kib - a.kib; });
        return bars({ rows: rows }, width, 'kib', 'layer', function (r) { return r.kib.toFixed(1); });
      }
      // Several models: a group of bars per layer (facet fy), one bar per model.
      return Plot.plot({
        width: width,
        marginLeft: labelMargin(spec.rows, 'layer'),
        marginRight: 56,
        height: 40 + layers.length * (models.length * 12 + 8),
        x: { grid: true, label: 'KiB' },
        y: { axis: null, domain: models },
        fy: { label: null, domain: layers },
        color: { type: 'categorical', domain: models, legend: true },
        marks: [
          Plot.barX(spec.rows, { x: 'kib', y: 'model', fy: 'layer', fill: 'model', title: function (r) { return r.model + ' ' + r.layer + ': ' + r.kib.toFixed(1) + ' KiB'; } }),
          Plot.ruleX([0]),
        ],
      });
    },
  };

  try {
    if (Plot === undefined) throw new Error('Observable Plot did not load');
    data.charts.forEach(function (spec) {
      var holder = document.querySelector('figure[data-chart="' + spec.id + '"] .plot');
      var width = Math.max(300, Math.floor(holder.getBoundingClientRect().width));
      holder.appendChild(draw[spec.kind](spec, width));
    });
    document.body.dataset.charts = String(data.charts.length);
  } catch (error) {
    document.body.dataset.chartsError = String(error && error.message || error);
    var note = document.createElement('p');
    note.className = 'error';
    note.textContent = 'The charts could not be drawn: ' + document.body.dataset.chartsError;
    document.querySelector('main').prepend(note);
  }
})();
`;
