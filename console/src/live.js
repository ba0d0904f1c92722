// The live view: rows of chosen tables and syms as the tickerplant publishes them.
// Events are only queued when they arrive; one requestAnimationFrame loop folds the queue
// into a fixed ring of recent rows per table and repaints the grids' visible rows, so
// 10k rows/s cost a copy per row and one paint per frame.
import { AuthError, events, getJSON } from './api.js';
import { Grid } from './grid.js';
import { el, formatterForQ } from './format.js';

const KEEP = 20_000; // rows kept per table (newest first on screen)

/** A ring of the newest KEEP rows of one table, columnar, as a grid source. */
export class Ring {
  constructor(columns) {
    this.columns = columns.map((c) => ({ ...c, fmt: formatterForQ(c.type), values: new Array(KEEP), width: c.type === 'timestamp' ? 210 : 90 }));
    this.head = 0; // where the next row goes
    this.size = 0;
  }

  get rowCount() {
    return this.size;
  }

  push(batch) {
    const n = batch.rows;
    const start = Math.max(0, n - KEEP); // a batch larger than the ring: only its tail stays
    for (const c of this.columns) {
      const src = batch.columns[c.name];
      if (!src) continue;
      let at = this.head;
      for (let i = start; i < n; i++) {
        c.values[at] = src[i];
        at = at + 1 === KEEP ? 0 : at + 1;
      }
    }
    this.head = (this.head + (n - start)) % KEEP;
    this.size = Math.min(KEEP, this.size + (n - start));
  }

  cell(row, col) {
    const c = this.columns[col];
    const at = (this.head - 1 - row + KEEP * 2) % KEEP;
    return c.fmt(c.values[at]);
  }
}

export class LiveView {
  constructor(root) {
    this.root = root;
    this.tables = el('div', { class: 'checks', 'aria-label': 'tables' });
    this.syms = el('input', { placeholder: 'all syms (or AAPL,MSFT)', 'aria-label': 'syms' });
    this.startButton = el('button', { class: 'primary', 'data-testid': 'live-start', text: 'Start', onclick: () => this.start() });
    this.stopButton = el('button', { text: 'Stop', disabled: true, onclick: () => this.stop() });
    this.status = el('span', { class: 'status', 'data-testid': 'live-status', role: 'status' });
    this.panes = el('div', { class: 'live-panes' });
    root.append(
      el('div', { class: 'toolbar' }, el('span', {}, 'Tables'), this.tables, el('label', {}, 'Syms ', this.syms), this.startButton, this.stopButton, this.status),
      this.panes,
    );
    this.close = null;
    this.loaded = false;
  }

  async activate() {
    if (this.loaded) return;
    try {
      const tables = await getJSON('/tables');
      this.tables.replaceChildren(...tables.map((t) =>
        el('label', {}, el('input', { type: 'checkbox', value: t.name, checked: t.name === 'trade' || t.name === 'quote' }), ` ${t.name}`)));
      this.loaded = true;
    } catch (err) {
      if (!(err instanceof AuthError)) this.status.textContent = `tables unavailable: ${err.message}`;
    }
  }

  deactivate() {
    this.stop();
  }

  chosen() {
    return Array.from(this.tables.querySelectorAll('input:checked')).map((i) => i.value);
  }

  start() {
    this.stop();
    const tables = this.chosen();
    const syms = this.syms.value.replace(/\s+/g, '');
    const query = new URLSearchParams({ tables: tables.join(','), syms });
    this.panesByTable = new Map();
    this.queue = [];
    this.received = 0;
    this.window = []; // [time, rows] of the last seconds, for the rate
    this.frames = [];
    this.panes.replaceChildren();
    this.status.textContent = 'connecting…';
    this.startButton.disabled = true;
    this.stopButton.disabled = false;
    this.close = events(`/console/live?${query}`, (name, data) => this.onEvent(name, data), (err) => {
      this.status.textContent = `stopped: ${err.message}`;
      this.stop();
    });
    this.running = true;
    const loop = (now) => {
      if (!this.running) return;
      this.frame(now);
      requestAnimationFrame(loop);
    };
    requestAnimationFrame(loop);
  }

  stop() {
    this.running = false;
    if (this.close) this.close();
    this.close = null;
    this.startButton.disabled = false;
    this.stopButton.disabled = true;
  }

  onEvent(name, data) {
    if (name === 'hello') {
      for (const [table, columns] of Object.entries(data.tables)) this.addPane(table, columns);
      this.status.textContent = 'live';
      this.status.dataset.state = 'live';
    } else if (name === 'rows') {
      this.queue.push(data);
    } else if (name === 'eod') {
      this.queue.push({ eod: data.date });
    }
  }

  addPane(table, columns) {
    const ring = new Ring(columns);
    const count = el('span', { class: 'muted', text: '0 rows' });
    const host = el('div', { class: 'grid-host live-grid', 'data-testid': `live-${table}` });
    this.panes.append(el('section', { class: 'live-pane' }, el('h3', {}, table, ' ', count), host));
    const grid = new Grid(host);
    grid.setSource(ring);
    this.panesByTable.set(table, { ring, grid, count, total: 0 });
  }

  /** One animation frame: fold the queued batches in, repaint what changed, count. */
  frame(now) {
    const touched = new Set();
    for (const batch of this.queue) {
      if (batch.eod) {
        this.status.dataset.eod = batch.eod;
        continue;
      }
      const pane = this.panesByTable.get(batch.table);
      if (!pane) continue;
      pane.ring.push(batch);
      pane.total += batch.rows;
      this.received += batch.rows;
      this.window.push([now, batch.rows]);
      touched.add(pane);
    }
    this.queue = [];
    for (const pane of touched) {
      pane.grid.refresh();
      pane.count.textContent = `${pane.total.toLocaleString()} rows`;
    }
    this.frames.push(now);
    while (this.frames.length && now - this.frames[0] > 1000) this.frames.shift();
    while (this.window.length && now - this.window[0][0] > 1000) this.window.shift();
    if (touched.size || this.frames.length % 15 === 0) {
      const rate = this.window.reduce((s, [, n]) => s + n, 0);
      this.status.textContent = `live · ${rate.toLocaleString()} rows/s · ${this.received.toLocaleString()} rows · ${this.frames.length} fps`;
      this.status.dataset.received = String(this.received);
      this.status.dataset.rate = String(rate);
      this.status.dataset.fps = String(this.frames.length);
    }
  }
}
