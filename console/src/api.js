// Every call the console makes goes through here: it carries the user's credentials
// (sessionStorage, so they last for the tab and no longer), and any 401 or 403 drops them
// and reloads into the login page, so a refused user never keeps data on screen.

const AUTH_KEY = 'tickdb.auth';
const MESSAGE_KEY = 'tickdb.loginMessage';

export function authHeader() {
  return sessionStorage.getItem(AUTH_KEY);
}

export function setAuth(value) {
  sessionStorage.setItem(AUTH_KEY, value);
}

export function basic(user, password) {
  const bytes = new TextEncoder().encode(`${user}:${password}`);
  let text = '';
  for (const b of bytes) text += String.fromCharCode(b);
  return 'Basic ' + btoa(text);
}

export function loginMessage() {
  const message = sessionStorage.getItem(MESSAGE_KEY);
  sessionStorage.removeItem(MESSAGE_KEY);
  return message;
}

export class AuthError extends Error {}

/** Forget the credentials and show the login page, with why. */
export function signOut(message) {
  sessionStorage.removeItem(AUTH_KEY);
  if (message) sessionStorage.setItem(MESSAGE_KEY, message);
  // A reload clears every view's state: nothing fetched before stays on the page.
  document.getElementById('app').hidden = true;
  document.getElementById('views').replaceChildren();
  location.reload();
}

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

function headers(extra) {
  const h = new Headers(extra || {});
  const auth = authHeader();
  if (auth) h.set('Authorization', auth);
  return h;
}

function refused(status) {
  return status === 401 || status === 403;
}

/** fetch() with the credentials; 401/403 sign out; other errors throw ApiError. */
export async function call(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers(options.headers) });
  if (refused(response.status)) {
    let why = '';
    try {
      const body = await response.json();
      why = body.detail || body.message || '';
    } catch {
      /* no body */
    }
    const base = response.status === 403 ? 'Your user may not do that (403)' : 'Please sign in (401)';
    signOut(why ? `${base}: ${why}` : `${base}.`);
    throw new AuthError(String(response.status));
  }
  if (!response.ok) {
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = { message: await response.text().catch(() => '') };
    }
    throw new ApiError(response.status, body);
  }
  return response;
}

export async function getJSON(path) {
  return (await call(path)).json();
}

export async function postJSON(path, body, extraHeaders) {
  const response = await call(path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(extraHeaders || {}) },
    body: JSON.stringify(body),
  });
  return response;
}

/**
 * Server-sent events over fetch (EventSource cannot send an Authorization header).
 * onEvent(name, data) is called per event; returns a function that stops the stream.
 */
export function events(path, onEvent, onError) {
  const controller = new AbortController();
  (async () => {
    let response;
    try {
      response = await call(path, { signal: controller.signal, headers: { Accept: 'text/event-stream' } });
    } catch (err) {
      if (!controller.signal.aborted && !(err instanceof AuthError)) onError && onError(err);
      return;
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let name = 'message';
          const data = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) name = line.slice(7);
            else if (line.startsWith('data: ')) data.push(line.slice(6));
          }
          if (data.length) onEvent(name, JSON.parse(data.join('\n')));
        }
      }
      if (!controller.signal.aborted) onError && onError(new Error('the stream ended'));
    } catch (err) {
      if (!controller.signal.aborted) onError && onError(err);
    }
  })();
  return () => controller.abort();
}

/** Save bytes as a file through a temporary link. */
export function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
