// How values are shown: times in UTC to the microsecond, floats to 10 significant digits.
import { DataType } from 'apache-arrow';

function pad(n, width) {
  return String(n).padStart(width, '0');
}

/** Epoch milliseconds (fraction kept) as `YYYY-MM-DD HH:MM:SS.ffffff`. */
export function formatTime(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '';
  const whole = Math.floor(ms);
  const micros = Math.round((ms - whole) * 1000);
  const iso = new Date(whole).toISOString(); // 2024-01-02T09:30:00.123Z
  return `${iso.slice(0, 10)} ${iso.slice(11, 23)}${pad(Math.min(micros, 999), 3)}`;
}

export function formatDate(ms) {
  if (ms === null || ms === undefined) return '';
  return new Date(ms).toISOString().slice(0, 10);
}

export function formatNumber(v) {
  if (typeof v === 'bigint') return v.toString();
  if (typeof v !== 'number') return String(v);
  if (Number.isInteger(v)) return String(v);
  if (!Number.isFinite(v)) return String(v);
  return String(Number(v.toPrecision(10)));
}

/** A formatter for one Arrow field's values. */
export function formatterFor(type) {
  if (DataType.isTimestamp(type)) return (v) => (v === null ? '' : formatTime(v));
  if (DataType.isDate(type)) return (v) => (v === null ? '' : formatDate(v));
  if (DataType.isInt(type) || DataType.isFloat(type) || DataType.isDecimal(type)) {
    return (v) => (v === null ? '' : formatNumber(v));
  }
  return (v) => {
    if (v === null || v === undefined) return '';
    if (typeof v === 'object') {
      try {
        return JSON.stringify(v.toJSON ? v.toJSON() : v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x));
      } catch {
        return String(v);
      }
    }
    return String(v);
  };
}

/** A formatter for live columns: type is the q type the tickerplant declares. */
export function formatterForQ(qtype) {
  if (qtype === 'timestamp') return (v) => (v === null ? '' : formatTime(v));
  if (['float', 'real', 'long', 'int', 'short'].includes(qtype)) {
    return (v) => (v === null ? '' : formatNumber(v));
  }
  return (v) => (v === null || v === undefined ? '' : String(v));
}

export function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
