// The query view: editor (SQL or q), history, run (Ctrl-Enter), results in the virtual
// grid fed with Arrow, the plan, exports and a chart of the result.
import { tableFromIPC } from 'apache-arrow';
import { ApiError, AuthError, call, download, postJSON } from './api.js';
import { QueryEditor, duckdbPosition } from './editor.js';
import { Grid, arrowSource } from './grid.js';
import { ResultChart } from './charts.js';
import { el } from './format.js';

const HISTORY_KEY = 'tickdb.history';
const HISTORY_MAX = 100;
const EXAMPLES = {
  sql: 'select sym, count(*) as n, sum(price*size)/sum(size) as vwap\nfrom trade group by sym order by n desc',
  q: 'select n:count i, vwap:size wavg price by sym from trade',
};

function loadHistory() {
  try {
    return JSON.parse(localStorage.getItem(HISTORY_KEY) || '[]');
  } catch {
    return [];
  }
}

export class QueryView {
  constructor(root) {
    this.root = root;
    this.mode = 'sql';
    this.history = loadHistory();
    this.modeButtons = ['sql', 'q'].map((m) =>
      el('button', { class: 'mode', 'data-mode': m, 'aria-pressed': String(m === 'sql'), text: m === 'sql' ? 'SQL' : 'q', onclick: () => this.setMode(m) }));
    this.maxRows = el('input', { type: 'number', min: '0', value: '1000000', class: 'narrow', 'aria-label': 'max rows' });
    this.runButton = el('button', { class: 'primary', 'data-testid': 'run', title: 'Ctrl-Enter', text: 'Run ▶', onclick: () => this.run() });
    this.status = el('span', { class: 'status', 'data-testid': 'query-status', role: 'status' });
    this.error = el('pre', { class: 'error-box', 'data-testid': 'query-error', hidden: true });
    this.plan = el('pre', { class: 'plan-box', 'data-testid': 'query-plan', hidden: true });
    this.historyList = el('ol', { class: 'history', 'aria-label': 'history' });
    const editorHost = el('div', { class: 'editor' });
    const exportButtons = ['csv', 'arrow', 'parquet'].map((f) => el('button', { class: 'small', text: f.toUpperCase(), 'data-export': f, onclick: () => this.export(f) }));
    this.tabs = {
      table: el('button', { class: 'subtab', 'aria-pressed': 'true', text: 'Table', onclick: () => this.show('table') }),
      chart: el('button', { class: 'subtab', 'aria-pressed': 'false', text: 'Chart', 'data-testid': 'chart-tab', onclick: () => this.show('chart') }),
    };
    this.gridHost = el('div', { class: 'grid-host', 'data-testid': 'results' });
    this.chartHost = el('div', { class: 'chart-host', hidden: true });
    root.append(
      el('div', { class: 'query-top' },
        el('div', { class: 'editor-col' },
          el('div', { class: 'toolbar' }, ...this.modeButtons, this.runButton,
            el('button', { text: 'Plan', title: 'how the gateway would run it', onclick: () => this.explain() }),
            el('label', {}, 'max rows ', this.maxRows),
            el('span', { class: 'muted' }, 'export '), ...exportButtons),
          editorHost),
        el('div', { class: 'history-col' }, el('h3', { text: 'History' }), this.historyList)),
      this.error,
      this.plan,
      el('div', { class: 'toolbar' }, this.tabs.table, this.tabs.chart, this.status),
      this.gridHost,
      this.chartHost,
    );
    this.editor = new QueryEditor(editorHost, {
      onRun: () => this.run(),
      history: () => this.history,
      doc: EXAMPLES.sql,
    });
    this.grid = new Grid(this.gridHost);
    this.chart = new ResultChart(this.chartHost);
    this.renderHistory();
  }

  activate() {
    this.editor.focus();
  }

  setMode(mode) {
    const before = this.editor.text.trim();
    this.mode = mode;
    for (const b of this.modeButtons) b.setAttribute('aria-pressed', String(b.dataset.mode === mode));
    this.editor.setMode(mode);
    if (!before || Object.values(EXAMPLES).includes(before)) this.editor.text = EXAMPLES[mode];
  }

  show(which) {
    this.tabs.table.setAttribute('aria-pressed', String(which === 'table'));
    this.tabs.chart.setAttribute('aria-pressed', String(which === 'chart'));
    this.gridHost.hidden = which !== 'table';
    this.chartHost.hidden = which !== 'chart';
    if (which === 'chart' && this.table && this.chart.table !== this.table) this.chart.setTable(this.table);
    if (which === 'table') this.grid.schedule();
  }

  body(extra) {
    const text = this.editor.text;
    const body = this.mode === 'q' ? { q: text } : { sql: text };
    const max = Number(this.maxRows.value);
    if (this.maxRows.value !== '' && Number.isFinite(max)) body.max_rows = max;
    return { ...body, ...extra };
  }

  remember(text) {
    const last = this.history[this.history.length - 1];
    if (!last || last.text !== text || last.mode !== this.mode) {
      this.history.push({ mode: this.mode, text, at: Date.now() });
      this.history = this.history.slice(-HISTORY_MAX);
      localStorage.setItem(HISTORY_KEY, JSON.stringify(this.history));
      this.renderHistory();
    }
    this.editor.historyIndex = null;
  }

  renderHistory() {
    this.historyList.replaceChildren(
      ...this.history.slice().reverse().map((h) =>
        el('li', {},
          el('button', {
            class: 'link', title: h.text, text: `${h.mode === 'q' ? 'q) ' : ''}${h.text.replace(/\s+/g, ' ').slice(0, 80)}`,
            onclick: () => {
              if (h.mode !== this.mode) this.setMode(h.mode);
              this.editor.text = h.text;
              this.editor.focus();
            },
          }))));
  }

  showError(err) {
    const message = err instanceof ApiError ? `${err.body.error || err.status}: ${err.message}` : String(err.message || err);
    this.error.textContent = message;
    this.error.hidden = false;
    let position = err instanceof ApiError ? err.body.position : null;
    if ((position === null || position === undefined) && err instanceof ApiError) {
      position = duckdbPosition(err.message, this.editor.text);
    }
    if (position !== null && position !== undefined) {
      this.editor.showError(position, err.message);
      this.error.textContent = `${message}\n(at line ${this.editor.view.state.doc.lineAt(Math.min(position, this.editor.text.length)).number}, character ${position})`;
    }
  }

  clearMessages() {
    this.error.hidden = true;
    this.error.textContent = '';
    this.editor.showError(null);
  }

  async run() {
    const text = this.editor.text.trim();
    if (!text || this.running) return;
    this.running = true;
    this.clearMessages();
    this.plan.hidden = true;
    const started = performance.now();
    this.status.textContent = 'running…';
    this.status.dataset.state = 'running';
    this.runButton.disabled = true;
    this.remember(this.editor.text);
    try {
      const response = await postJSON('/query', this.body({ format: 'arrow' }), { Accept: 'application/vnd.apache.arrow.stream' });
      const bytes = new Uint8Array(await response.arrayBuffer());
      const table = tableFromIPC(bytes);
      this.table = table;
      this.arrowBytes = bytes;
      this.grid.setSource(arrowSource(table));
      if (!this.chartHost.hidden) this.chart.setTable(table);
      const h = response.headers;
      // Painted: the grid's rows are in the DOM; the next frame shows them.
      requestAnimationFrame(() => {
        const ms = performance.now() - started;
        const flags = [
          h.get('X-Tickdb-Truncated') === 'true' ? 'truncated' : '',
          h.get('X-Tickdb-Partial') === 'true' ? 'partial' : '',
        ].filter(Boolean).join(', ');
        const keys = h.get('X-Tickdb-Keys');
        this.status.textContent = `${table.numRows.toLocaleString()} rows · plan ${h.get('X-Tickdb-Plan')} · gateway ${h.get('X-Tickdb-Elapsed-Ms')} ms · shown in ${ms.toFixed(0)} ms${keys ? ` · keys ${keys}` : ''}${flags ? ` · ${flags}` : ''}`;
        this.status.dataset.state = 'done';
        this.status.dataset.rows = String(table.numRows);
        this.status.dataset.paintMs = ms.toFixed(1);
      });
    } catch (err) {
      if (err instanceof AuthError) return;
      this.status.textContent = 'failed';
      this.status.dataset.state = 'error';
      this.showError(err);
    } finally {
      this.running = false;
      this.runButton.disabled = false;
    }
  }

  async explain() {
    this.clearMessages();
    try {
      const response = await postJSON('/query/plan', this.body({}));
      this.plan.textContent = JSON.stringify(await response.json(), null, 2);
      this.plan.hidden = false;
    } catch (err) {
      if (!(err instanceof AuthError)) this.showError(err);
    }
  }

  async export(format) {
    this.clearMessages();
    if (format === 'arrow' && this.arrowBytes && this.table) {
      // The last result as it came: no second run.
      download(new Blob([this.arrowBytes], { type: 'application/vnd.apache.arrow.stream' }), 'result.arrows');
      return;
    }
    try {
      const body = this.body({ format });
      const response = await call('/console/export', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
      const suffix = { csv: 'csv', arrow: 'arrows', parquet: 'parquet' }[format];
      download(await response.blob(), `result.${suffix}`);
    } catch (err) {
      if (!(err instanceof AuthError)) this.showError(err);
    }
  }
}
