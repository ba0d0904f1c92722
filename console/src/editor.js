// The query editor: CodeMirror 6 with DuckDB-flavoured SQL or q highlighting, Ctrl-Enter
// (Cmd-Enter) to run, Alt-Up/Alt-Down through the history, errors underlined where the
// gateway says they are.
import { EditorView, basicSetup } from 'codemirror';
import { keymap } from '@codemirror/view';
import { Compartment, EditorState, Prec } from '@codemirror/state';
import { sql, PostgreSQL } from '@codemirror/lang-sql';
import { StreamLanguage } from '@codemirror/language';
import { setDiagnostics } from '@codemirror/lint';

const Q_KEYWORDS = new Set(
  ('select exec update delete from where by fby aj aj0 ij lj uj pj wj wj1 asof xbar xasc xdesc ' +
    'within like in and or not neg abs sum avg min max count first last med dev var wavg wsum ' +
    'til enlist distinct asc desc each over scan prior peach xkey xcol xcols cols meta string ' +
    'sv vs ss ssr sublist reverse raze flip key value type null fills deltas ratios sums mins maxs prds ' +
    'mavg msum mmin mmax mcount ema exp log sqrt floor ceiling signum mod div xlog lower upper trim')
    .split(' '),
);

/** A small q tokenizer: comments, strings, symbols, numbers and temporals, keywords. */
const qLanguage = StreamLanguage.define({
  name: 'q',
  token(stream) {
    if (stream.sol() && stream.match(/^\/.*/)) return 'comment';
    if (stream.match(/^\s+\/.*/)) return 'comment';
    if (stream.eatSpace()) return null;
    if (stream.match(/^"(?:[^"\\]|\\.)*"?/)) return 'string';
    if (stream.match(/^`[\w.:/]*/)) return 'atom';
    if (stream.match(/^\d{4}\.\d{2}\.\d{2}(D[\d:.]*)?/)) return 'number';
    if (stream.match(/^\d{2}:\d{2}(:\d{2}(\.\d+)?)?/)) return 'number';
    if (stream.match(/^-?\d+(\.\d*)?(e-?\d+)?[jihfenptdzuvmb]?/)) return 'number';
    if (stream.match(/^0[nNwW][jihfenptdzuvm]?/)) return 'number';
    if (stream.match(/^[A-Za-z_.][\w.]*/)) {
      return Q_KEYWORDS.has(stream.current()) ? 'keyword' : 'variableName';
    }
    if (stream.match(/^[-+*%!@#$^&|<>=~,?:';]/)) return 'operator';
    stream.next();
    return null;
  },
});

export const LANGUAGES = {
  sql: () => sql({ dialect: PostgreSQL, upperCaseKeywords: false }),
  q: () => qLanguage,
};

export class QueryEditor {
  /**
   * onRun(text) runs the query; history() gives past queries (newest last).
   */
  constructor(parent, { onRun, history, mode = 'sql', doc = '' }) {
    this.language = new Compartment();
    this.history = history;
    this.historyIndex = null;
    const runKey = (view) => {
      onRun(view.state.doc.toString());
      return true;
    };
    this.view = new EditorView({
      parent,
      state: EditorState.create({
        doc,
        extensions: [
          Prec.highest(
            keymap.of([
              { key: 'Mod-Enter', run: runKey },
              { key: 'Shift-Enter', run: runKey },
              { key: 'Alt-ArrowUp', run: () => this.step(-1) },
              { key: 'Alt-ArrowDown', run: () => this.step(1) },
            ]),
          ),
          basicSetup,
          this.language.of(LANGUAGES[mode]()),
          EditorView.lineWrapping,
          EditorView.contentAttributes.of({ 'aria-label': 'query editor' }),
        ],
      }),
    });
  }

  get text() {
    return this.view.state.doc.toString();
  }

  set text(value) {
    this.view.dispatch({ changes: { from: 0, to: this.view.state.doc.length, insert: value } });
  }

  setMode(mode) {
    this.view.dispatch({ effects: this.language.reconfigure(LANGUAGES[mode]()) });
  }

  focus() {
    this.view.focus();
  }

  /** Step through the history (Alt-Up older, Alt-Down newer). */
  step(delta) {
    const past = this.history();
    if (!past.length) return true;
    const at = this.historyIndex === null ? past.length : this.historyIndex;
    const next = Math.max(0, Math.min(past.length, at + delta));
    this.historyIndex = next;
    this.text = next === past.length ? '' : past[next].text;
    return true;
  }

  /** Underline the error at a 0-based character (or clear with null). */
  showError(position, message) {
    if (position === null || position === undefined) {
      this.view.dispatch(setDiagnostics(this.view.state, []));
      return;
    }
    const length = this.view.state.doc.length;
    const from = Math.max(0, Math.min(position, length));
    const line = this.view.state.doc.lineAt(from);
    const word = /^[\w.`']+/.exec(this.view.state.sliceDoc(from, line.to));
    const to = Math.min(length, from + Math.max(1, word ? word[0].length : 1));
    this.view.dispatch(
      setDiagnostics(this.view.state, [{ from, to: Math.max(to, from), severity: 'error', message }]),
    );
  }
}

/**
 * Where DuckDB says the error is: its messages quote the line ("LINE 2: ...") with a caret
 * under the spot on the next line. Returns a 0-based offset into `query`, or null.
 */
export function duckdbPosition(message, query) {
  const lines = String(message).split('\n');
  for (let i = 0; i < lines.length - 1; i++) {
    const m = /^LINE (\d+): (.*)$/.exec(lines[i]);
    if (!m) continue;
    const caret = lines[i + 1].indexOf('^');
    if (caret < 0) continue;
    const prefix = `LINE ${m[1]}: `.length;
    let quoted = m[2];
    let column = caret - prefix;
    // DuckDB cuts long lines and marks the cut with "..."; find the quoted part in the line.
    const queryLines = query.split('\n');
    const lineNo = Number(m[1]) - 1;
    const text = queryLines[lineNo] ?? '';
    if (quoted.startsWith('...')) {
      quoted = quoted.slice(3);
      column -= 3;
    }
    if (quoted.endsWith('...')) quoted = quoted.slice(0, -3);
    const start = text.indexOf(quoted.slice(0, 40));
    const offsetInLine = (start >= 0 ? start : 0) + Math.max(0, column);
    let offset = 0;
    for (let l = 0; l < lineNo && l < queryLines.length; l++) offset += queryLines[l].length + 1;
    return Math.min(offset + offsetInLine, query.length);
  }
  // No caret (binder errors): the first quoted name the message gives ("pricex", "frm"),
  // where it stands as a whole word in the query.
  for (const m of String(message).matchAll(/"([^"\n]{1,80})"/g)) {
    const name = m[1];
    const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const found = new RegExp(`(^|[^\\w])${escaped}($|[^\\w])`).exec(query);
    if (found) return found.index + found[1].length;
  }
  return null;
}
