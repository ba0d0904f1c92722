// The symbol view: one sym's day as candles, volume and VWAP; today's bars keep moving
// with the live trades.
import { tableFromIPC } from 'apache-arrow';
import { CandlestickSeries, HistogramSeries, LineSeries } from 'lightweight-charts';
import { AuthError, events, postJSON } from './api.js';
import { numbers, timeChart } from './charts.js';
import { el } from './format.js';

const INTERVALS = { '1s': 1, '10s': 10, '1m': 60, '5m': 300, '15m': 900, '1h': 3600 };

function sqlString(s) {
  return "'" + String(s).replace(/'/g, "''") + "'";
}

export function barsQuery(sym, date, seconds) {
  return `SELECT bar(time, INTERVAL ${seconds} SECOND) AS bar_time,
  first(price ORDER BY time) AS open, max(price) AS high, min(price) AS low,
  last(price ORDER BY time) AS close, sum(size) AS volume, sum(price * size) AS notional
FROM trade WHERE sym = ${sqlString(sym)} AND date = DATE ${sqlString(date)}
GROUP BY 1 ORDER BY 1`;
}

export class SymbolView {
  constructor(root, session) {
    this.session = session;
    this.sym = el('input', { value: 'AAPL', 'aria-label': 'sym', class: 'narrow' });
    this.date = el('input', { type: 'date', 'aria-label': 'date' });
    this.interval = el('select', { 'aria-label': 'bar size' }, ...Object.keys(INTERVALS).map((k) => el('option', { value: k, text: k })));
    this.interval.value = '1m';
    this.status = el('span', { class: 'status', 'data-testid': 'symbol-status', role: 'status' });
    this.area = el('div', { class: 'chart-area tall', 'data-testid': 'symbol-chart' });
    const form = el('form', { class: 'toolbar', onsubmit: (e) => { e.preventDefault(); this.load(); } },
      el('label', {}, 'Sym ', this.sym), el('label', {}, 'Day ', this.date), el('label', {}, 'Bars ', this.interval),
      el('button', { class: 'primary', type: 'submit', text: 'Show' }), this.status);
    root.append(form, this.area);
    this.stop = null;
    this.chart = null;
  }

  activate() {
    if (!this.date.value) this.date.value = this.session.today || new Date().toISOString().slice(0, 10);
    if (!this.chart) this.load();
  }

  deactivate() {
    if (this.stop) this.stop();
    this.stop = null;
  }

  async load() {
    this.deactivate();
    const sym = this.sym.value.trim();
    const date = this.date.value;
    const seconds = INTERVALS[this.interval.value];
    if (!sym || !date) return;
    this.status.textContent = 'loading…';
    let table;
    try {
      const response = await postJSON('/query', { sql: barsQuery(sym, date, seconds), format: 'arrow' });
      table = tableFromIPC(new Uint8Array(await response.arrayBuffer()));
    } catch (err) {
      if (!(err instanceof AuthError)) this.status.textContent = `failed: ${err.message}`;
      return;
    }
    const col = (name) => numbers(table.getChild(name));
    const [t, o, h, l, c, v, pv] = ['bar_time', 'open', 'high', 'low', 'close', 'volume', 'notional'].map(col);
    this.seconds = seconds;
    this.bars = [];
    for (let i = 0; i < table.numRows; i++) {
      this.bars.push({ time: Math.floor(t[i] / 1000), open: o[i], high: h[i], low: l[i], close: c[i], volume: v[i], notional: pv[i] });
    }
    this.draw();
    const live = date === this.session.today && this.session.tickerplant;
    this.status.textContent = `${sym} ${date}: ${table.numRows} bars${live ? ' · live' : ''}`;
    this.status.dataset.bars = String(table.numRows);
    if (live) this.follow(sym);
  }

  draw() {
    if (this.chart) this.chart.remove();
    this.area.replaceChildren();
    this.chart = timeChart(this.area);
    this.candles = this.chart.addSeries(CandlestickSeries, {});
    this.vwap = this.chart.addSeries(LineSeries, { color: '#ff6d00', lineWidth: 2, title: 'VWAP' });
    this.volume = this.chart.addSeries(HistogramSeries, { color: '#90a4ae', priceFormat: { type: 'volume' }, title: 'volume' }, 1);
    this.candles.setData(this.bars.map(({ time, open, high, low, close }) => ({ time, open, high, low, close })));
    this.volume.setData(this.bars.map(({ time, volume }) => ({ time, value: volume })));
    this.vwap.setData(this.vwapPoints());
    this.chart.timeScale().fitContent();
  }

  /** The day's running VWAP at each bar's close. */
  vwapPoints() {
    let notional = 0, volume = 0;
    const out = [];
    for (const b of this.bars) {
      notional += b.notional;
      volume += b.volume;
      if (volume > 0) out.push({ time: b.time, value: notional / volume });
    }
    return out;
  }

  /** Fold live trades into the last bar (or open new ones), redrawn once per frame. */
  follow(sym) {
    let dirty = false;
    this.stop = events(`/console/live?tables=trade&syms=${encodeURIComponent(sym)}`, (name, data) => {
      if (name !== 'rows' || data.table !== 'trade') return;
      const { time, price, size } = data.columns;
      for (let i = 0; i < data.rows; i++) this.addTrade(time[i], price[i], size[i]);
      if (!dirty) {
        dirty = true;
        requestAnimationFrame(() => {
          dirty = false;
          this.paintLast();
        });
      }
    }, (err) => { this.status.textContent = `live stopped: ${err.message}`; });
  }

  addTrade(ms, price, size) {
    const time = Math.floor(ms / 1000 / this.seconds) * this.seconds;
    let last = this.bars[this.bars.length - 1];
    if (!last || time > last.time) {
      last = { time, open: price, high: price, low: price, close: price, volume: 0, notional: 0 };
      this.bars.push(last);
      this.newBars = (this.newBars || 0) + 1;
    } else if (time < last.time) {
      return; // a late trade for a bar already drawn: the next reload counts it
    }
    last.high = Math.max(last.high, price);
    last.low = Math.min(last.low, price);
    last.close = price;
    last.volume += size;
    last.notional += price * size;
    this.liveTrades = (this.liveTrades || 0) + 1;
    this.status.dataset.liveTrades = String(this.liveTrades);
  }

  paintLast() {
    const b = this.bars[this.bars.length - 1];
    if (!b || !this.candles) return;
    this.candles.update({ time: b.time, open: b.open, high: b.high, low: b.low, close: b.close });
    this.volume.update({ time: b.time, value: b.volume });
    const points = this.vwapPoints();
    if (points.length) this.vwap.update(points[points.length - 1]);
  }
}
