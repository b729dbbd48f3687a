// Small shared pieces: html (htm bound to preact), a loader hook, an error line, a time.
import { html } from "htm/preact";
import { useEffect, useState, useCallback, useRef } from "preact/hooks";

export { html };

// Only the answer of the latest request is shown: an answer that arrives after a newer
// request was sent (a filter changed while the old list was loading) is dropped.
export function useLoad(fn, deps) {
  const [state, set] = useState({ data: null, error: null, loading: true });
  const latest = useRef(0);
  const reload = useCallback(() => {
    const ticket = ++latest.current;
    const settle = (next) => ticket === latest.current && set(next);
    set((s) => ({ ...s, loading: true }));
    fn().then(
      (data) => settle({ data, error: null, loading: false }),
      (error) => settle({ data: null, error, loading: false })
    );
  }, deps);
  useEffect(reload, [reload]);
  return { ...state, reload };
}

export function Problem({ error }) {
  return error ? html`<p class="error" role="alert">${error.message}</p>` : null;
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

export function Status({ value }) {
  return html`<span class=${"badge " + value}>${value}</span>`;
}
