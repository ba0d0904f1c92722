// Trading: an order ticket, the blotter (working and done orders, cancel and replace),
// positions and P&L, updated from the account's order events; for admins the kill
// switch and the risk limits.
import { ApiError, AuthError, events, getJSON, postJSON } from './api.js';
import { el, formatNumber } from './format.js';

const WORKING = new Set(['pending_new', 'new', 'partially_filled', 'replaced', 'pending_cancel', 'pending_replace']);

function money(v) {
  return v === null || v === undefined ? '' : Number(v).toFixed(2);
}

export class TradingView {
  constructor(root, session) {
    this.session = session;
    this.rows = new Map(); // clordid -> { key, tr }: the blotter's rows, kept while unchanged
    this.edits = new Map(); // clordid -> { qty, price } typed into a row, not yet sent
    this.account = el('input', { value: session.user || 'ME', 'aria-label': 'account', class: 'narrow' });
    this.sym = el('input', { value: 'AAPL', 'aria-label': 'order sym', class: 'narrow' });
    this.side = el('select', { 'aria-label': 'side' }, el('option', { value: 'buy', text: 'buy' }), el('option', { value: 'sell', text: 'sell' }));
    this.qty = el('input', { type: 'number', value: '100', min: '1', 'aria-label': 'quantity', class: 'narrow' });
    this.price = el('input', { type: 'number', step: '0.01', 'aria-label': 'price', class: 'narrow' });
    this.type = el('select', { 'aria-label': 'order type' }, el('option', { value: 'limit', text: 'limit' }), el('option', { value: 'market', text: 'market' }));
    this.tif = el('select', { 'aria-label': 'time in force' }, ...['day', 'gtc', 'ioc', 'fok'].map((t) => el('option', { value: t, text: t })));
    this.ticketResult = el('div', { class: 'ticket-result', 'data-testid': 'ticket-result', role: 'status' });
    this.blotter = el('tbody', { 'data-testid': 'blotter' });
    this.openOnly = el('input', { type: 'checkbox', 'aria-label': 'working orders only' });
    this.openOnly.addEventListener('change', () => this.refresh());
    this.positions = el('tbody', { 'data-testid': 'positions' });
    this.updated = el('span', { class: 'muted' });
    const ticket = el('form', { class: 'ticket', onsubmit: (e) => { e.preventDefault(); this.submit(); } },
      el('h3', { text: 'Order ticket' }),
      el('div', { class: 'toolbar' },
        el('label', {}, 'Account ', this.account), el('label', {}, 'Sym ', this.sym), this.side,
        el('label', {}, 'Qty ', this.qty), el('label', {}, 'Price ', this.price), this.type, this.tif,
        el('button', { class: 'primary', type: 'submit', 'data-testid': 'submit-order', text: 'Send' })),
      this.ticketResult);
    this.account.addEventListener('change', () => this.follow());
    const blotter = el('section', {},
      el('h3', {}, 'Blotter ', el('label', { class: 'small muted' }, this.openOnly, ' working only'), ' ', this.updated),
      el('table', { class: 'data' },
        el('thead', {}, el('tr', {}, ...['ClOrdID', 'Sym', 'Side', 'Type', 'TIF', 'Qty', 'Price', 'Filled', 'Avg px', 'Status', 'Reason', ''].map((h) => el('th', { text: h })))),
        this.blotter));
    const positions = el('section', {},
      el('h3', { text: 'Positions and P&L' }),
      el('table', { class: 'data' },
        el('thead', {}, el('tr', {}, ...['Sym', 'Qty', 'Avg price', 'Mark', 'Realized', 'Unrealized', 'Bought', 'Sold'].map((h) => el('th', { text: h })))),
        this.positions));
    root.append(ticket, blotter, positions);
    if ((session.roles || []).includes('admin')) root.append(this.adminPanel());
    this.stop = null;
    this.timer = null;
  }

  adminPanel() {
    this.killScope = el('select', { 'aria-label': 'kill scope' }, el('option', { value: 'account', text: 'this account' }), el('option', { value: 'global', text: 'everything' }));
    this.riskState = el('pre', { class: 'plan-box', 'data-testid': 'risk-state' });
    this.limitsAccount = el('input', { placeholder: 'account (empty: defaults)', 'aria-label': 'limits account' });
    this.limits = el('textarea', { rows: 3, 'aria-label': 'limit changes', placeholder: '{"max_order_qty": 5000}' });
    this.adminResult = el('div', { class: 'ticket-result', 'data-testid': 'admin-result', role: 'status' });
    return el('section', { class: 'admin' },
      el('h3', { text: 'Risk (admin)' }),
      el('div', { class: 'toolbar' },
        el('button', { class: 'danger', 'data-testid': 'kill', text: 'Kill switch', onclick: () => this.admin('/risk/kill') }),
        el('button', { 'data-testid': 'resume', text: 'Resume', onclick: () => this.admin('/risk/resume') }),
        el('label', {}, 'for ', this.killScope)),
      el('div', { class: 'toolbar' }, el('label', {}, 'Limits of ', this.limitsAccount), this.limits,
        el('button', { text: 'Apply limits', onclick: () => this.applyLimits() })),
      this.adminResult,
      this.riskState);
  }

  activate() {
    this.follow();
    this.timer = setInterval(() => this.refreshPositions(), 2000); // marks move with prices
  }

  deactivate() {
    if (this.stop) this.stop();
    this.stop = null;
    clearInterval(this.timer);
  }

  /** Refresh on the account's order events (at most every 150 ms). */
  follow() {
    if (this.stop) this.stop();
    const account = this.account.value.trim();
    this.refresh();
    if (!this.session.tickerplant || !account) return;
    let pending = null;
    this.stop = events(`/console/live?tables=order,fill&accounts=${encodeURIComponent(account)}`, (name) => {
      if (name !== 'rows' || pending) return;
      pending = setTimeout(() => {
        pending = null;
        this.refresh();
      }, 150);
    }, () => {});
  }

  showResult(node, ok, text) {
    node.textContent = text;
    node.className = `ticket-result ${ok ? 'ok' : 'error'}`;
  }

  async submit() {
    const body = {
      account: this.account.value.trim(),
      sym: this.sym.value.trim(),
      side: this.side.value,
      qty: Number(this.qty.value),
      type: this.type.value,
      tif: this.tif.value,
    };
    if (this.type.value === 'limit') body.price = Number(this.price.value);
    try {
      const order = await (await postJSON('/orders', body)).json();
      const ok = order.status !== 'rejected';
      this.showResult(this.ticketResult, ok, `${order.clordid}: ${order.status}${order.reason ? ` (${order.reason})` : ''}`);
    } catch (err) {
      if (err instanceof AuthError) return;
      this.showResult(this.ticketResult, false, rejectText(err));
    }
    this.refresh();
  }

  async cancel(order) {
    try {
      await postJSON('/orders/cancel', { account: order.account, orig_clordid: order.clordid });
      this.showResult(this.ticketResult, true, `cancel sent for ${order.clordid}`);
    } catch (err) {
      if (!(err instanceof AuthError)) this.showResult(this.ticketResult, false, rejectText(err));
    }
    this.refresh();
  }

  async replace(order, qty, price) {
    this.edits.delete(order.clordid);
    const body = { account: order.account, orig_clordid: order.clordid };
    if (qty !== '' && Number(qty) !== order.qty) body.qty = Number(qty);
    if (price !== '' && Number(price) !== order.price) body.price = Number(price);
    try {
      const done = await (await postJSON('/orders/replace', body)).json();
      this.showResult(this.ticketResult, true, `${order.clordid} → ${done.clordid}: ${done.status}`);
    } catch (err) {
      if (!(err instanceof AuthError)) this.showResult(this.ticketResult, false, rejectText(err));
    }
    this.refresh();
  }

  async refresh() {
    const account = encodeURIComponent(this.account.value.trim());
    try {
      const orders = await getJSON(`/orders?account=${account}&open=${this.openOnly.checked}`);
      this.renderBlotter(orders.slice().reverse());
      this.updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
    } catch (err) {
      if (!(err instanceof AuthError)) this.updated.textContent = `orders unavailable: ${err.message}`;
    }
    await this.refreshPositions();
    if (this.riskState) this.refreshRisk();
  }

  async refreshPositions() {
    const account = encodeURIComponent(this.account.value.trim());
    try {
      const rows = await getJSON(`/positions?account=${account}`);
      this.positions.replaceChildren(...rows.map((p) => el('tr', { dataset: { sym: p.sym } },
        el('td', { text: p.sym }), el('td', { class: 'num', text: String(p.qty) }), el('td', { class: 'num', text: money(p.avg_price) }),
        el('td', { class: 'num', text: money(p.mark) }), el('td', { class: `num ${p.realized_pnl < 0 ? 'neg' : ''}`, text: money(p.realized_pnl) }),
        el('td', { class: `num ${p.unrealized_pnl < 0 ? 'neg' : ''}`, text: money(p.unrealized_pnl) }),
        el('td', { class: 'num', text: String(p.bought) }), el('td', { class: 'num', text: String(p.sold) }))));
    } catch {
      /* shown by the blotter's line */
    }
  }

  /**
   * Rows are kept while their order is unchanged and moved only when their place changes,
   * so a price or quantity being typed into a row (and its focus) survives the refreshes
   * that follow every order event; a changed row is rebuilt with the typed values kept.
   */
  renderBlotter(orders) {
    const previous = this.rows || new Map();
    this.rows = new Map();
    const wanted = orders.map((o) => {
      const key = JSON.stringify([o.status, o.qty, o.price, o.cum_qty, o.avg_px, o.reason]);
      const kept = previous.get(o.clordid);
      const tr = kept && kept.key === key ? kept.tr : this.blotterRow(o);
      this.rows.set(o.clordid, { key, tr });
      return tr;
    });
    let at = this.blotter.firstChild;
    for (const tr of wanted) {
      if (tr === at) {
        at = at.nextSibling;
        continue;
      }
      this.blotter.insertBefore(tr, at);
    }
    while (at) {
      const next = at.nextSibling;
      at.remove();
      at = next;
    }
    for (const clordid of this.edits.keys()) {
      if (!this.rows.has(clordid)) this.edits.delete(clordid);
    }
  }

  blotterRow(o) {
    const working = WORKING.has(o.status);
    const typed = this.edits.get(o.clordid) || {};
    const qty = el('input', { type: 'number', value: typed.qty ?? String(o.qty), class: 'tiny', 'aria-label': `new quantity of ${o.clordid}` });
    const price = el('input', { type: 'number', step: '0.01', value: typed.price ?? (o.price === null ? '' : String(o.price)), class: 'tiny', 'aria-label': `new price of ${o.clordid}` });
    const remember = () => this.edits.set(o.clordid, { qty: qty.value, price: price.value });
    qty.addEventListener('input', remember);
    price.addEventListener('input', remember);
    const actions = working
      ? el('td', {}, el('button', { class: 'small', 'data-action': 'cancel', text: 'Cancel', onclick: () => this.cancel(o) }), ' ', qty, price,
          el('button', { class: 'small', 'data-action': 'replace', text: 'Replace', onclick: () => this.replace(o, qty.value, price.value) }))
      : el('td');
    return el('tr', { dataset: { clordid: o.clordid, status: o.status } },
      el('td', { text: o.clordid }), el('td', { text: o.sym }), el('td', { text: o.side }), el('td', { text: o.ord_type }), el('td', { text: o.tif }),
      el('td', { class: 'num', text: String(o.qty) }), el('td', { class: 'num', text: o.price === null ? 'mkt' : formatNumber(o.price) }),
      el('td', { class: 'num', text: String(o.cum_qty) }), el('td', { class: 'num', text: money(o.avg_px) }),
      el('td', { class: `status-${o.status}`, text: o.status }), el('td', { text: o.reason || '' }), actions);
  }

  scope() {
    return this.killScope.value === 'global' ? {} : { account: this.account.value.trim() };
  }

  async admin(path) {
    try {
      const answer = await (await postJSON(path, this.scope())).json();
      const what = path.endsWith('kill') ? 'kill switch on' : 'trading resumed';
      this.showResult(this.adminResult, true, `${what}${answer.canceled !== undefined ? `, ${answer.canceled} orders canceled` : ''}`);
    } catch (err) {
      if (!(err instanceof AuthError)) this.showResult(this.adminResult, false, rejectText(err));
    }
    this.refresh();
  }

  async applyLimits() {
    let changes;
    try {
      changes = JSON.parse(this.limits.value || '{}');
    } catch (err) {
      this.showResult(this.adminResult, false, `limits must be a JSON object: ${err.message}`);
      return;
    }
    try {
      const account = this.limitsAccount.value.trim() || null;
      await postJSON('/risk/limits', { account, changes });
      this.showResult(this.adminResult, true, `limits of ${account || 'the defaults'} changed`);
    } catch (err) {
      if (!(err instanceof AuthError)) this.showResult(this.adminResult, false, rejectText(err));
    }
    this.refreshRisk();
  }

  async refreshRisk() {
    try {
      const risk = await getJSON('/risk');
      const account = this.account.value.trim();
      const summary = {
        state: risk.state,
        kills: risk.kills,
        account: risk.accounts[account] ? { [account]: risk.accounts[account] } : undefined,
        counters: risk.counters,
        defaults: risk.defaults,
      };
      this.riskState.textContent = JSON.stringify(summary, null, 2);
      this.riskState.dataset.kills = JSON.stringify(risk.kills);
    } catch (err) {
      if (!(err instanceof AuthError)) this.riskState.textContent = `risk unavailable: ${err.message}`;
    }
  }
}

export function rejectText(err) {
  if (err instanceof ApiError && err.body.code) return `rejected: ${err.body.code}: ${err.message}`;
  return `failed: ${err.message}`;
}
