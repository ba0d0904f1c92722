// The console's entry: the login page or the app, then one view per tab (#query, …).
import './style.css';
import { AuthError, basic, getJSON, loginMessage, setAuth, signOut, authHeader } from './api.js';
import { QueryView } from './query.js';
import { SymbolView } from './symbol.js';
import { LiveView } from './live.js';
import { TradingView } from './trading.js';
import { OpsView } from './ops.js';
import { el } from './format.js';

const VIEWS = { query: QueryView, symbol: SymbolView, live: LiveView, trading: TradingView, ops: OpsView };

function showLogin(message) {
  document.getElementById('app').hidden = true;
  document.getElementById('views').replaceChildren();
  document.getElementById('login').hidden = false;
  document.getElementById('login-error').textContent = message || '';
  document.getElementById('login-user').focus();
}

async function checkSession() {
  // The check endpoint answers with the user and roles, 401/403 otherwise (api.js then
  // reloads into the login page).
  return getJSON('/console/session');
}

function startApp(session) {
  document.getElementById('login').hidden = true;
  document.getElementById('app').hidden = false;
  document.getElementById('whoami').textContent = session.user ? `${session.user} (${session.roles.join(', ')})` : 'authentication off';
  document.getElementById('logout').onclick = () => signOut('Signed out.');
  const host = document.getElementById('views');
  const made = {};
  let current = null;
  const show = () => {
    const name = (location.hash || '#query').slice(1);
    const view = VIEWS[name] ? name : 'query';
    if (current && current !== view && made[current].deactivate) made[current].deactivate();
    if (!made[view]) {
      const root = el('section', { class: 'view', id: `view-${view}`, 'data-view': view });
      host.append(root);
      made[view] = new VIEWS[view](root, session);
    }
    for (const section of host.children) section.hidden = section.dataset.view !== view;
    for (const a of document.querySelectorAll('#tabs a')) a.setAttribute('aria-selected', String(a.dataset.view === view));
    current = view;
    if (made[view].activate) made[view].activate();
  };
  window.addEventListener('hashchange', show);
  show();
}

async function boot() {
  const message = loginMessage();
  const form = document.getElementById('login-form');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const user = document.getElementById('login-user').value;
    const password = document.getElementById('login-password').value;
    const bearer = document.getElementById('login-bearer').checked;
    setAuth(bearer ? `Bearer ${user ? `${user}:` : ''}${password}` : basic(user, password));
    // A refused check reloads into this page with the reason (api.js).
    try {
      startApp(await checkSession());
    } catch (err) {
      if (!(err instanceof AuthError)) showLogin(`the gateway did not answer: ${err.message}`);
    }
  });
  if (message && !authHeader()) {
    showLogin(message);
    return;
  }
  try {
    // With stored credentials, or none (authentication off lets everyone in).
    startApp(await checkSession());
  } catch (err) {
    if (!(err instanceof AuthError)) showLogin(`the gateway did not answer: ${err.message}`);
  }
}

boot();
