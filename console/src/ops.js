// Operations: every component with its role, lag, heartbeat and end-of-day state, the
// tickerplant's counters and journal, the gateway's counters and recent errors; polled.
import { AuthError, getJSON } from './api.js';
import { el, formatNumber } from './format.js';

function age(s) {
  if (s === null || s === undefined) return '';
  return s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(1)} s`;
}

function bytes(n) {
  if (n === null || n === undefined) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function table(headers, rows, attrs = {}) {
  return el('table', { class: 'data', ...attrs },
    el('thead', {}, el('tr', {}, ...headers.map((h) => el('th', { text: h })))),
    el('tbody', {}, ...rows));
}

export class OpsView {
  constructor(root) {
    this.root = root;
    this.status = el('span', { class: 'status', 'data-testid': 'ops-status', role: 'status' });
    this.body = el('div', { class: 'ops' });
    root.append(el('div', { class: 'toolbar' }, el('button', { text: 'Refresh', onclick: () => this.load() }), this.status), this.body);
    this.timer = null;
  }

  activate() {
    this.load();
    this.timer = setInterval(() => this.load(), 2000);
  }

  deactivate() {
    clearInterval(this.timer);
  }

  async load() {
    let ops;
    try {
      ops = await getJSON('/console/ops');
    } catch (err) {
      if (!(err instanceof AuthError)) this.status.textContent = `unavailable: ${err.message}`;
      return;
    }
    this.status.textContent = `as of ${new Date(ops.time * 1000).toLocaleTimeString()}`;
    const tp = ops.tickerplant;
    const components = [
      el('tr', { dataset: { component: 'gateway' } }, el('td', { text: 'gateway' }), el('td', { text: 'gateway' }), el('td', { class: 'ok', text: 'up' }),
        el('td'), el('td'), el('td'), el('td'), el('td'), el('td')),
      el('tr', { dataset: { component: 'tickerplant' } }, el('td', { text: tp.address || '(none)' }), el('td', { text: 'tickerplant' }),
        el('td', { class: tp.up ? 'ok' : 'bad', text: tp.up ? 'up' : 'down' }), el('td'),
        el('td', { text: tp.stats ? tp.stats.session : '' }), el('td', { class: 'num', text: tp.stats ? String(tp.stats.seq) : '' }), el('td'),
        el('td', { text: tp.rtt_ms !== undefined ? `rtt ${tp.rtt_ms} ms` : '' }), el('td', { class: 'error', text: tp.error || '' })),
      ...ops.backends.map((b) => el('tr', { dataset: { component: b.name } },
        el('td', { text: b.name }), el('td', { text: b.role + (b.shard ? ` ${b.shard}` : '') }),
        el('td', { class: b.up ? 'ok' : 'bad', text: b.up ? 'up' : 'down' }),
        el('td', { text: Object.entries(b.states || {}).map(([d, s]) => `${d} ${s}`).join(', ') || (b.dates || []).slice(-3).join(', ') }),
        el('td', { text: b.date || '' }),
        el('td', { class: 'num', text: b.seq === null || b.seq === undefined ? '' : String(b.seq) }),
        el('td', { class: `num ${b.seq_lag > 1000 ? 'bad' : ''}`, text: b.seq_lag === null || b.seq_lag === undefined ? '' : String(b.seq_lag) }),
        el('td', { text: `${age(b.heartbeat_age_s)}${b.extra && b.extra.ingest_lag_ms !== undefined && b.extra.ingest_lag_ms !== null ? ` · ingest lag ${b.extra.ingest_lag_ms} ms` : ''}` }),
        el('td', { class: 'error', text: b.error || (b.extra && (b.extra.writedown_error || b.extra.ingest_error)) || '' }))),
      // A venue is judged by its answers in the order flow: 'waiting' means orders routed
      // to it are pending and it has published nothing for a while.
      ...(ops.venues || []).map((v) => el('tr', { dataset: { component: v.name } },
        el('td', { text: v.name }), el('td', { text: `${v.role} ${v.shard}` }),
        el('td', { class: v.state === 'waiting' ? 'bad' : 'ok', text: v.state }),
        el('td'), el('td'),
        el('td', { class: 'num', text: String(v.last_in_seq) }),
        el('td', { class: `num ${v.pending_orders ? 'bad' : ''}`, text: `${v.pending_orders} pending` }),
        el('td', { text: v.last_event_age_s === null ? 'no events' : `last event ${age(v.last_event_age_s)} ago` }),
        el('td', { text: `${v.open_orders} open · ${formatNumber(v.events)} events · ${formatNumber(v.fills)} fills` }))),
    ];
    const stats = tp.stats || {};
    const tpRows = ['seq', 'journal_bytes', 'messages', 'rows', 'records', 'duplicates', 'out_of_order', 'rejected', 'malformed', 'rolls', 'publishers', 'topics', 'replay_requests', 'bad_subscriptions']
      .filter((k) => k in stats)
      .map((k) => el('tr', { dataset: { counter: k } }, el('td', { text: k }), el('td', { class: 'num', text: k === 'journal_bytes' ? bytes(stats[k]) : formatNumber(stats[k]) })));
    for (const [reason, n] of Object.entries(stats.errors_by_reason || {})) {
      tpRows.push(el('tr', {}, el('td', { text: `errors: ${reason}` }), el('td', { class: 'num', text: String(n) })));
    }
    const counters = ops.gateway.counters
      .filter((c) => !c.name.endsWith('_bucket'))
      .map((c) => el('tr', {}, el('td', { text: c.name }), el('td', { text: Object.entries(c.labels).map(([k, v]) => `${k}=${v}`).join(' ') }), el('td', { class: 'num', text: formatNumber(c.value) })));
    const errors = ops.errors.map((e) => el('tr', {}, el('td', { text: new Date(e.time * 1000).toLocaleTimeString() }), el('td', { text: e.level }), el('td', { text: e.logger }), el('td', { class: 'wrap', text: e.message })));
    this.body.replaceChildren(
      el('h3', { text: 'Components' }),
      table(['component', 'role', 'state', 'end of day', 'session', 'seq', 'lag', 'heartbeat', 'error'], components, { 'data-testid': 'ops-components' }),
      el('div', { class: 'two' },
        el('section', {}, el('h3', { text: 'Tickerplant' }), table(['counter', 'value'], tpRows, { 'data-testid': 'ops-tickerplant' })),
        el('section', {}, el('h3', { text: 'Gateway' }), table(['metric', 'labels', 'value'], counters))),
      el('h3', { text: 'Recent errors' }),
      errors.length ? table(['time', 'level', 'logger', 'message'], errors, { 'data-testid': 'ops-errors' }) : el('p', { class: 'muted', text: 'none' }),
    );
  }
}
