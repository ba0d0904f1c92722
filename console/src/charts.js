// Charts: TradingView's lightweight-charts for anything over time (line, candlesticks,
// bars as a histogram; wheel zooms, drag pans), a plain canvas for bars by category.
import { createChart, LineSeries, CandlestickSeries, HistogramSeries } from 'lightweight-charts';
import { DataType } from 'apache-arrow';
import { el, formatNumber } from './format.js';

const COLORS = ['#2962ff', '#e91e63', '#00897b', '#f57c00', '#6a1b9a', '#546e7a'];

function cssVar(name, fallback) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

export function timeChart(container) {
  return createChart(container, {
    autoSize: true,
    layout: { background: { color: cssVar('--panel', '#fff') }, textColor: cssVar('--text', '#222') },
    grid: { vertLines: { color: '#eee' }, horzLines: { color: '#eee' } },
    timeScale: { timeVisible: true, secondsVisible: true },
    rightPriceScale: { borderVisible: false },
  });
}

/** Numbers from an Arrow column (bigints converted), nulls as NaN. */
export function numbers(vector) {
  const out = new Float64Array(vector.length);
  for (let i = 0; i < vector.length; i++) {
    const v = vector.get(i);
    out[i] = v === null || v === undefined ? NaN : Number(v);
  }
  return out;
}

function isTimeType(type) {
  return DataType.isTimestamp(type) || DataType.isDate(type);
}

function isNumberType(type) {
  return DataType.isInt(type) || DataType.isFloat(type) || DataType.isDecimal(type);
}

/**
 * Points {time (s), value} sorted by time with one point per time (the last wins):
 * lightweight-charts needs strictly ascending times.
 */
export function series(times, values) {
  const order = Array.from(times.keys()).filter((i) => Number.isFinite(times[i]) && Number.isFinite(values[i]));
  order.sort((a, b) => times[a] - times[b]);
  const out = [];
  for (const i of order) {
    const time = times[i] / 1000;
    if (out.length && out[out.length - 1].time === time) out[out.length - 1].value = values[i];
    else out.push({ time, value: values[i] });
  }
  return out;
}

const OHLC_NAMES = [
  ['open', 'high', 'low', 'close'],
  ['o', 'h', 'l', 'c'],
];

/** The chart under a query result: pick a kind and columns, then draw. */
export class ResultChart {
  constructor(container) {
    this.container = container;
    this.kind = el('select', { 'aria-label': 'chart kind' },
      el('option', { value: 'line', text: 'line over time' }),
      el('option', { value: 'candles', text: 'candlesticks (OHLC)' }),
      el('option', { value: 'bars', text: 'bars' }));
    this.x = el('select', { 'aria-label': 'x column' });
    this.y = el('select', { 'aria-label': 'y columns', multiple: true, size: 3 });
    this.message = el('span', { class: 'muted' });
    this.area = el('div', { class: 'chart-area', 'data-testid': 'result-chart' });
    const redraw = () => this.draw();
    for (const s of [this.kind, this.x, this.y]) s.addEventListener('change', redraw);
    container.append(
      el('div', { class: 'toolbar' }, el('label', {}, 'Chart ', this.kind), el('label', {}, 'x ', this.x), el('label', {}, 'y ', this.y), this.message),
      this.area,
    );
    this.chart = null;
  }

  setTable(table) {
    this.table = table;
    const fields = table.schema.fields;
    const timeField = fields.find((f) => isTimeType(f.type));
    const numeric = fields.filter((f) => isNumberType(f.type));
    const names = new Set(fields.map((f) => f.name.toLowerCase()));
    const ohlc = OHLC_NAMES.find((set) => set.every((n) => names.has(n)));
    this.x.replaceChildren(...fields.map((f) => el('option', { value: f.name, text: f.name })));
    this.y.replaceChildren(...numeric.map((f) => el('option', { value: f.name, text: f.name })));
    if (timeField) this.x.value = timeField.name;
    else if (fields.length) this.x.value = fields[0].name;
    const firstY = numeric.find((f) => f.name !== this.x.value && !/^(date|time)$/i.test(f.name));
    for (const option of this.y.options) option.selected = firstY && option.value === firstY.name;
    this.kind.value = ohlc && timeField ? 'candles' : timeField ? 'line' : 'bars';
    this.draw();
  }

  clear() {
    if (this.chart) this.chart.remove();
    this.chart = null;
    this.area.replaceChildren();
  }

  column(name) {
    const fields = this.table.schema.fields;
    const i = fields.findIndex((f) => f.name === name);
    return i < 0 ? null : { field: fields[i], vector: this.table.getChildAt(i) };
  }

  draw() {
    this.clear();
    this.message.textContent = '';
    if (!this.table || !this.table.numRows) {
      this.message.textContent = 'no rows to chart';
      return;
    }
    const x = this.column(this.x.value);
    const ys = Array.from(this.y.selectedOptions).map((o) => this.column(o.value)).filter(Boolean);
    if (this.kind.value === 'candles') return this.drawCandles(x);
    if (!ys.length) {
      this.message.textContent = 'choose a numeric y column';
      return;
    }
    if (x && isTimeType(x.field.type)) return this.drawOverTime(x, ys, this.kind.value === 'bars');
    return this.drawCategories(x, ys[0]);
  }

  drawOverTime(x, ys, bars) {
    const chart = (this.chart = timeChart(this.area));
    const times = numbers(x.vector);
    ys.forEach((y, i) => {
      const s = chart.addSeries(bars ? HistogramSeries : LineSeries, { color: COLORS[i % COLORS.length], title: y.field.name });
      s.setData(series(times, numbers(y.vector)));
    });
    chart.timeScale().fitContent();
  }

  drawCandles(x) {
    const names = new Map(this.table.schema.fields.map((f) => [f.name.toLowerCase(), f.name]));
    const set = OHLC_NAMES.find((s) => s.every((n) => names.has(n)));
    if (!set || !x || !isTimeType(x.field.type)) {
      this.message.textContent = 'candlesticks need a time column and open, high, low, close columns';
      return;
    }
    const times = numbers(x.vector);
    const [o, h, l, c] = set.map((n) => numbers(this.column(names.get(n)).vector));
    const rows = Array.from(times.keys()).filter((i) => Number.isFinite(times[i])).sort((a, b) => times[a] - times[b]);
    const data = [];
    for (const i of rows) {
      const point = { time: times[i] / 1000, open: o[i], high: h[i], low: l[i], close: c[i] };
      if (data.length && data[data.length - 1].time === point.time) data[data.length - 1] = point;
      else data.push(point);
    }
    this.chart = timeChart(this.area);
    this.chart.addSeries(CandlestickSeries, {}).setData(data);
    const volume = ['volume', 'v', 'size'].map((n) => names.get(n)).find(Boolean);
    if (volume) {
      const v = numbers(this.column(volume).vector);
      const vs = this.chart.addSeries(HistogramSeries, { color: '#90a4ae', priceFormat: { type: 'volume' } }, 1);
      vs.setData(rows.map((i) => ({ time: times[i] / 1000, value: v[i] })).filter((p, k, all) => k === all.length - 1 || all[k + 1].time !== p.time));
    }
    this.chart.timeScale().fitContent();
  }

  /** Bars by category on a canvas (lightweight-charts only has a time axis). */
  drawCategories(x, y) {
    const canvas = el('canvas', { class: 'bar-canvas' });
    this.area.append(canvas);
    const n = Math.min(this.table.numRows, 200);
    const labels = [];
    const values = [];
    for (let i = 0; i < n; i++) {
      labels.push(x ? String(x.vector.get(i)) : String(i));
      values.push(Number(y.vector.get(i)));
    }
    if (this.table.numRows > n) this.message.textContent = `first ${n} rows shown`;
    const draw = () => drawBars(canvas, labels, values, y.field.name);
    draw();
    this.resizer = new ResizeObserver(draw);
    this.resizer.observe(this.area);
  }
}

export function drawBars(canvas, labels, values, title) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.parentElement.clientWidth || 600;
  const height = canvas.parentElement.clientHeight || 300;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const g = canvas.getContext('2d');
  g.scale(ratio, ratio);
  g.fillStyle = '#fff';
  g.fillRect(0, 0, width, height);
  const finite = values.filter(Number.isFinite);
  const max = Math.max(0, ...finite);
  const min = Math.min(0, ...finite);
  const left = 60, bottom = 40, top = 20;
  const plotH = height - bottom - top;
  const step = (width - left - 10) / Math.max(values.length, 1);
  const yOf = (v) => top + plotH * (1 - (v - min) / (max - min || 1));
  g.font = '11px system-ui, sans-serif';
  g.fillStyle = '#555';
  g.fillText(title, left, 12);
  g.fillText(formatNumber(max), 4, top + 8);
  g.fillText(formatNumber(min), 4, top + plotH);
  values.forEach((v, i) => {
    if (!Number.isFinite(v)) return;
    g.fillStyle = COLORS[0];
    const y0 = yOf(0), y1 = yOf(v);
    g.fillRect(left + i * step + step * 0.1, Math.min(y0, y1), step * 0.8, Math.abs(y1 - y0) || 1);
    if (step > 24) {
      g.fillStyle = '#333';
      g.fillText(labels[i].slice(0, Math.floor(step / 6)), left + i * step + 2, height - bottom + 14);
    }
  });
}
