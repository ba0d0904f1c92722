// A virtual grid: only the rows in view exist in the DOM (a fixed pool of row elements
// whose text is rewritten), so a million-row result scrolls like a hundred-row one.
// Sources give rowCount, columns [{name}], and cell(row, col) -> text.
import { el } from './format.js';
import { formatterFor } from './format.js';

const ROW_H = 22;
// Browsers cap an element's height (~33M px in Chromium); past this the scrollbar maps
// proportionally onto the rows.
const MAX_SCROLL_PX = 15_000_000;

/** A source over an Arrow table: values read from the column vectors on demand. */
export function arrowSource(table) {
  const columns = table.schema.fields.map((f, i) => ({ name: f.name, type: f.type, vector: table.getChildAt(i), fmt: formatterFor(f.type) }));
  return {
    rowCount: table.numRows,
    columns,
    cell(row, col) {
      const c = columns[col];
      return c.fmt(c.vector.get(row));
    },
  };
}

export class Grid {
  constructor(container) {
    this.container = container;
    this.scroller = el('div', { class: 'grid', tabindex: '0', role: 'grid', 'aria-label': 'results' });
    this.header = el('div', { class: 'grid-row grid-header', role: 'row' });
    this.spacer = el('div', { class: 'grid-spacer' });
    this.body = el('div', { class: 'grid-body' });
    this.spacer.append(this.body);
    this.scroller.append(this.header, this.spacer);
    container.append(this.scroller);
    this.source = null;
    this.pool = [];
    this.scheduled = false;
    this.painted = null; // resolves after the first paint of a new source
    this.scroller.addEventListener('scroll', () => this.schedule(), { passive: true });
    new ResizeObserver(() => this.schedule()).observe(this.scroller);
  }

  setSource(source) {
    this.source = source;
    const widths = this.measure(source);
    this.template = ['56px', ...widths.map((w) => `${w}px`)].join(' ');
    this.totalWidth = 56 + widths.reduce((a, b) => a + b, 0);
    this.header.style.gridTemplateColumns = this.template;
    this.header.style.width = `${this.totalWidth}px`;
    this.header.replaceChildren(
      el('div', { class: 'grid-cell grid-rownum', text: '#' }),
      ...source.columns.map((c) => el('div', { class: 'grid-cell', role: 'columnheader', title: c.name, text: c.name })),
    );
    this.pool.forEach((r) => r.remove());
    this.pool = [];
    this.scroller.scrollTop = 0;
    this.resize();
    this.render();
  }

  /** Column widths from the header and the first rows' text. */
  measure(source) {
    const sample = Math.min(source.rowCount, 200);
    return source.columns.map((c, col) => {
      let chars = c.name.length;
      for (let r = 0; r < sample; r++) chars = Math.max(chars, source.cell(r, col).length);
      return Math.min(360, Math.max(c.width || 60, chars * 7.5 + 16));
    });
  }

  resize() {
    const n = this.source ? this.source.rowCount : 0;
    this.fullHeight = n * ROW_H;
    this.spacer.style.height = `${Math.min(this.fullHeight, MAX_SCROLL_PX)}px`;
    this.spacer.style.width = `${this.totalWidth || 0}px`;
  }

  /** Rows were added to the source (live view): extend the scroll range. */
  refresh() {
    this.resize();
    this.schedule();
  }

  schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      this.render();
    });
  }

  firstRow(viewH) {
    const top = this.scroller.scrollTop;
    const n = this.source.rowCount;
    if (this.fullHeight <= MAX_SCROLL_PX) return Math.floor(top / ROW_H);
    const visible = Math.floor(viewH / ROW_H);
    const range = MAX_SCROLL_PX - viewH;
    return Math.floor((top / Math.max(range, 1)) * Math.max(n - visible, 0));
  }

  render() {
    const source = this.source;
    if (!source) return;
    const viewH = this.scroller.clientHeight || 400;
    const count = Math.ceil(viewH / ROW_H) + 1;
    while (this.pool.length < count) {
      const row = el('div', { class: 'grid-row', role: 'row' });
      row.style.gridTemplateColumns = this.template;
      row.style.width = `${this.totalWidth}px`;
      row.append(el('div', { class: 'grid-cell grid-rownum' }));
      for (let c = 0; c < source.columns.length; c++) row.append(el('div', { class: 'grid-cell' }));
      this.body.append(row);
      this.pool.push(row);
    }
    const first = Math.max(0, Math.min(this.firstRow(viewH), source.rowCount - 1));
    // The body sits inside the spacer where row `first` belongs (or, past the browser's
    // height cap, at the scroll position), clipped by the spacer so it never extends it.
    const spacerH = Math.min(this.fullHeight, MAX_SCROLL_PX);
    const shown = Math.min(count, source.rowCount - first);
    const at = this.fullHeight <= MAX_SCROLL_PX ? first * ROW_H : this.scroller.scrollTop;
    this.body.style.transform = `translateY(${Math.max(0, Math.min(at, spacerH - shown * ROW_H))}px)`;
    for (let i = 0; i < this.pool.length; i++) {
      const row = this.pool[i];
      const r = first + i;
      if (r >= source.rowCount || i >= count) {
        row.hidden = true;
        continue;
      }
      row.hidden = false;
      const cells = row.children;
      cells[0].textContent = String(r + 1);
      for (let c = 0; c < source.columns.length; c++) cells[c + 1].textContent = source.cell(r, c);
    }
    this.rendered = { first, count: shown };
  }
}
